// Quick start: the default (local) runtime with no configuration at all.
//
// Connects, runs a command, writes a file, reads it back, edits it, lists the workspace, and
// closes - printing each observation the way an agent would see it.
#include <runbox/runbox.hpp>

#include <cstdio>
#include <string>

namespace {

// One line per observation kind: what an agent would read.
void show(const char* what, const runbox::Observation& observation) {
    std::printf("--- %s: %s\n", what, runbox::message_of(observation).c_str());
    if (const auto* cmd = std::get_if<runbox::CmdOutputObservation>(&observation)) {
        std::printf("%s\n", runbox::to_agent_text(*cmd).c_str());
    } else if (const auto* edit = std::get_if<runbox::FileEditObservation>(&observation)) {
        std::printf("%s\ndiff:\n%s\n", edit->content.c_str(), edit->diff.value_or("").c_str());
    } else {
        std::visit([](const auto& o) {
            if (!o.content.empty()) std::printf("%s\n", o.content.c_str());
        }, observation);
    }
}

}  // namespace

int main() {
    try {
        runbox::Config config;  // runtime = "local": runbox's action server on this machine
        runbox::EventStream events;
        auto runtime = runbox::make_runtime(config, events, {
            .sid = "quickstart",
            .status_callback = [](std::string_view, runbox::RuntimeStatus status, std::string_view message) {
                std::printf("[%s] %s\n", std::string(runbox::to_string(status)).c_str(), std::string(message).c_str());
            },
        });
        runtime.connect();

        show("run", runtime.run("echo \"hello from $(basename \"$PWD\")\" && uname -s"));
        show("write", runtime.write("notes.txt", "first line\nsecond line"));
        show("read", runtime.read("notes.txt"));

        // The editor takes absolute paths; the shell's prompt reports the working directory.
        const auto pwd = runtime.run("pwd");
        const std::string workspace =
            std::get<runbox::CmdOutputObservation>(pwd).metadata.working_dir.value_or("/workspace");
        runbox::FileEditAction edit;
        edit.command = "str_replace";
        edit.path = workspace + "/notes.txt";
        edit.old_str = "second line";
        edit.new_str = "second line, edited";
        show("edit", runtime.edit(edit));

        std::printf("--- list_files\n");
        for (const auto& name : runtime.list_files()) std::printf("%s\n", name.c_str());

        runtime.close();
        std::printf("quickstart: done\n");
        return 0;
    } catch (const runbox::error& e) {
        std::fprintf(stderr, "quickstart: %s\n", e.what());
        return 1;
    }
}
