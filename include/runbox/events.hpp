/// \file
/// OpenHands actions and observations and their wire format.
///
/// JSON convention: serialisation returns nlohmann::ordered_json so that a dump
/// has the OpenHands key order (id, timestamp, source, message, cause,
/// action|observation, tool_call_metadata, llm_metrics, args, timeout | content,
/// extras, success). An ordered_json converts implicitly to nlohmann::json when
/// a caller does not care about order. Parsing accepts either json flavour.
/// Free-form payloads (MCP arguments, browser DOM objects, tool_call_metadata)
/// are kept as ordered_json so they round-trip byte for byte.
#pragma once

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/error.hpp"
#include "runbox/detail/json.hpp"
#include "runbox/detail/python.hpp"
#include "runbox/detail/utf8.hpp"

namespace runbox {

/// JSON that keeps its keys in insertion order: what every to_json here returns (the OpenHands key order).
using ordered_json = nlohmann::ordered_json;

// ---------------------------------------------------------------------------
// Enumerations

/// Who produced an event (the wire `source`).
enum class EventSource {
    agent,        ///< The agent (actions it chose).
    user,         ///< The user (messages, confirmations).
    environment,  ///< The runtime (observations).
};
/// Whether a user confirmed an action (the wire `confirmation_state`).
enum class ConfirmationState {
    confirmed,              ///< Confirmed (the default): run it.
    rejected,               ///< Rejected by the user: do not run it.
    awaiting_confirmation,  ///< Waiting for the user.
};
/// The risk of an action as an agent or a security analyzer rated it (the wire integer).
enum class SecurityRisk : int {
    unknown = -1,  ///< Not rated (the default).
    low = 0,       ///< Low risk.
    medium = 1,    ///< Medium risk.
    high = 2,      ///< High risk.
};
/// impl_source of a read: "default" or "oh_aci".
enum class FileReadSource {
    default_,  ///< `"default"`: the plain reader (line range `start`..`end`).
    oh_aci,    ///< `"oh_aci"`: OH-ACI's `view` (line numbers, `view_range`).
};
/// impl_source of an edit: "llm_based_edit" or "oh_aci".
enum class FileEditSource {
    llm_based_edit,  ///< `"llm_based_edit"`: replace lines `start`..`end` with `content`.
    oh_aci,          ///< `"oh_aci"`: OH-ACI's str_replace_editor commands.
};

/// The wire string of an enumerator (`"agent"`, `"confirmed"`, `"oh_aci"`, ...).
///@{
constexpr std::string_view to_string(EventSource s) noexcept {
    switch (s) {
        case EventSource::agent: return "agent";
        case EventSource::user: return "user";
        case EventSource::environment: return "environment";
    }
    return "agent";
}
constexpr std::string_view to_string(ConfirmationState s) noexcept {
    switch (s) {
        case ConfirmationState::confirmed: return "confirmed";
        case ConfirmationState::rejected: return "rejected";
        case ConfirmationState::awaiting_confirmation: return "awaiting_confirmation";
    }
    return "confirmed";
}
constexpr std::string_view to_string(FileReadSource s) noexcept {
    return s == FileReadSource::oh_aci ? "oh_aci" : "default";
}
constexpr std::string_view to_string(FileEditSource s) noexcept {
    return s == FileEditSource::oh_aci ? "oh_aci" : "llm_based_edit";
}
///@}

/// The EventSource of a wire string; nullopt for any other string.
inline std::optional<EventSource> event_source_from_string(std::string_view s) noexcept {
    if (s == "agent") return EventSource::agent;
    if (s == "user") return EventSource::user;
    if (s == "environment") return EventSource::environment;
    return std::nullopt;
}
/// The ConfirmationState of a wire string; nullopt for any other string.
inline std::optional<ConfirmationState> confirmation_state_from_string(std::string_view s) noexcept {
    if (s == "confirmed") return ConfirmationState::confirmed;
    if (s == "rejected") return ConfirmationState::rejected;
    if (s == "awaiting_confirmation") return ConfirmationState::awaiting_confirmation;
    return std::nullopt;
}

// ---------------------------------------------------------------------------
// Common event data

/// Stream bookkeeping shared by every event; all optional (unset = omitted on the wire).
struct EventMeta {
    /// Position in the EventStream, assigned when published; unset (or -1 on the wire) for a new event.
    std::optional<std::int64_t> id{};
    /// ISO 8601 time of publishing, as OpenHands writes it.
    std::optional<std::string> timestamp{};
    /// Who produced the event.
    std::optional<EventSource> source{};
    /// For an observation: the id of the action it answers.
    std::optional<std::int64_t> cause{};
    /// The LLM tool call that produced the event and the LLM's cost and token metrics; kept verbatim.
    ///@{
    std::optional<ordered_json> tool_call_metadata{}, llm_metrics{};
    ///@}
    /// Member-wise equality.
    friend bool operator==(const EventMeta&, const EventMeta&) = default;
};

// ---------------------------------------------------------------------------
// Actions (members = reference args in wire order, then timeout, then meta)

/// The empty action (`"null"`); never executed.
struct NullAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "null";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = false;
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const NullAction&, const NullAction&) = default;
};

/// Run a shell command in the sandbox's persistent bash session (`"run"`).
/// Members are the wire `args` of the same names.
struct CmdRunAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "run";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = true;
    /// The shell command; with `is_input`, text for the running command instead (`""` continues, `C-c` interrupts).
    std::string command{};
    /// True: `command` is input to the command still running, not a new command.
    bool is_input = false;
    /// The agent's reasoning that came with the action.
    std::string thought{};
    /// True: wait until the hard `timeout` instead of returning at the no-new-output timeout.
    bool blocking = false;
    /// True: run in a fresh non-interactive bash, not the persistent session.
    bool is_static = false;
    /// Working directory of a static command (unset: the sandbox's working directory).
    std::optional<std::string> cwd{};
    /// True: the output is neither truncated nor meant for the agent (runbox's own setup commands).
    bool hidden = false;
    /// Whether the user confirmed the action (a string on the wire).
    ConfirmationState confirmation_state = ConfirmationState::confirmed;
    /// The risk the agent or a security analyzer assigned (an integer on the wire).
    SecurityRisk security_risk = SecurityRisk::unknown;
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};

    /// An explicit timeout makes the command blocking by default (reference quirk 9).
    void set_hard_timeout(double seconds, bool block = true) {
        timeout = seconds;
        blocking = block;
    }
    /// Member-wise equality.
    friend bool operator==(const CmdRunAction&, const CmdRunAction&) = default;
};

/// Run a Jupyter cell (`"run_ipython"`).
/// Members are the wire `args` of the same names.
struct IPythonRunCellAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "run_ipython";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = true;
    /// The Python code of the cell.
    std::string code{};
    /// The agent's reasoning that came with the action.
    std::string thought{};
    /// True: the output ends with the kernel's working directory and interpreter.
    bool include_extra = true;
    /// Whether the user confirmed the action (a string on the wire).
    ConfirmationState confirmation_state = ConfirmationState::confirmed;
    /// The risk the agent or a security analyzer assigned (an integer on the wire).
    SecurityRisk security_risk = SecurityRisk::unknown;
    /// Code run once per kernel (again after a restart) before `code`; its output is dropped.
    std::string kernel_init_code{};
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const IPythonRunCellAction&, const IPythonRunCellAction&) = default;
};

/// Read a file or part of it (`"read"`).
/// Members are the wire `args` of the same names.
struct FileReadAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "read";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = true;
    /// The file, absolute or relative to the shell's current directory.
    std::string path{};
    /// First line to read, 0-based.
    int start = 0;
    /// Line after the last one read (end-exclusive, 0-based); -1: to the end of the file.
    int end = -1;
    /// The agent's reasoning that came with the action.
    std::string thought{};
    /// The risk the agent or a security analyzer assigned (an integer on the wire).
    SecurityRisk security_risk = SecurityRisk::unknown;
    /// Which reader: the plain one or OH-ACI's `view`.
    FileReadSource impl_source = FileReadSource::default_;
    std::optional<std::vector<int>> view_range{};  ///< [first, last], OH-ACI only
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const FileReadAction&, const FileReadAction&) = default;
};

/// Write a file or replace a range of its lines (`"write"`).
/// Members are the wire `args` of the same names.
struct FileWriteAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "write";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = true;
    /// The file, absolute or relative to the shell's current directory; created if missing.
    std::string path{};
    /// The text to write.
    std::string content{};
    /// First line replaced, 0-based.
    int start = 0;
    /// Line after the last one replaced (end-exclusive, a Python slice); -1: to the end of the file.
    int end = -1;
    /// The agent's reasoning that came with the action.
    std::string thought{};
    /// The risk the agent or a security analyzer assigned (an integer on the wire).
    SecurityRisk security_risk = SecurityRisk::unknown;
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const FileWriteAction&, const FileWriteAction&) = default;
};

/// Edit a file with OH-ACI's str_replace_editor or an LLM-based edit (`"edit"`).
/// Members are the wire `args` of the same names.
struct FileEditAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "edit";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = true;
    /// The file; an absolute path for OH-ACI commands.
    std::string path{};
    std::string command{};  ///< OH-ACI: view, create, str_replace, insert, undo_edit
    /// The whole file for `create`.
    std::optional<std::string> file_text{};
    /// For `str_replace`: the text to replace (it must occur exactly once).
    std::optional<std::string> old_str{};
    /// For `str_replace`: the replacement; for `insert`: the text inserted.
    std::optional<std::string> new_str{};
    /// For `insert`: the line after which `new_str` goes (0: at the top).
    std::optional<int> insert_line{};
    std::string content{};  ///< LLM-based edit
    /// LLM-based edit: first line replaced, 1-based.
    int start = 1;
    /// LLM-based edit: last line replaced; -1: to the end of the file.
    int end = -1;
    /// The agent's reasoning that came with the action.
    std::string thought{};
    /// The risk the agent or a security analyzer assigned (an integer on the wire).
    SecurityRisk security_risk = SecurityRisk::unknown;
    /// OH-ACI (`command` and its arguments) or LLM-based (`content` over `start`..`end`, inclusive;
    /// OpenHands does those on the client; the action server refuses them).
    FileEditSource impl_source = FileEditSource::oh_aci;
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const FileEditAction&, const FileEditAction&) = default;
};

/// Open a URL in the sandbox's browser (`"browse"`).
/// Members are the wire `args` of the same names.
struct BrowseURLAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "browse";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = true;
    /// The page to open.
    std::string url{};
    /// The agent's reasoning that came with the action.
    std::string thought{};
    /// The risk the agent or a security analyzer assigned (an integer on the wire).
    SecurityRisk security_risk = SecurityRisk::unknown;
    /// True: the observation carries the page's accessibility tree.
    bool return_axtree = false;
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const BrowseURLAction&, const BrowseURLAction&) = default;
};

/// Run BrowserGym actions in the sandbox's browser (`"browse_interactive"`).
/// Members are the wire `args` of the same names.
struct BrowseInteractiveAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "browse_interactive";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = true;
    /// BrowserGym action code (`click("12")`, `goto("...")`, ...).
    std::string browser_actions{};
    /// The agent's reasoning that came with the action.
    std::string thought{};
    /// A message from the browsing agent to the user.
    std::string browsergym_send_msg_to_user{};
    /// The risk the agent or a security analyzer assigned (an integer on the wire).
    SecurityRisk security_risk = SecurityRisk::unknown;
    /// True: the observation carries the page's accessibility tree.
    bool return_axtree = false;
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const BrowseInteractiveAction&, const BrowseInteractiveAction&) = default;
};

/// Call a tool of an MCP server (`"call_tool_mcp"`).
/// Members are the wire `args` of the same names.
struct MCPAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "call_tool_mcp";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = true;
    /// The MCP tool to call.
    std::string name{};
    /// The tool's arguments, kept verbatim (an object).
    ordered_json arguments = ordered_json::object();
    /// The agent's reasoning that came with the action.
    std::string thought{};
    /// The risk the agent or a security analyzer assigned (an integer on the wire).
    SecurityRisk security_risk = SecurityRisk::unknown;
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const MCPAction&, const MCPAction&) = default;
};

/// A chat message (not runnable); present so legacy `images_urls` can be read.
struct MessageAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "message";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = false;
    /// The message text.
    std::string content{};
    /// Files attached to the message.
    std::optional<std::vector<std::string>> file_urls{};
    /// Images attached to the message (the legacy `images_urls` is read too).
    std::optional<std::vector<std::string>> image_urls{};
    /// True: the agent waits for the user's answer.
    bool wait_for_response = false;
    /// The risk the agent or a security analyzer assigned (an integer on the wire).
    SecurityRisk security_risk = SecurityRisk::unknown;
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const MessageAction&, const MessageAction&) = default;
};

/// The agent logs a thought (`"think"`; not runnable).
struct AgentThinkAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "think";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = false;
    /// The thought logged.
    std::string thought{};
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const AgentThinkAction&, const AgentThinkAction&) = default;
};

/// The agent finished the task (`"finish"`; not runnable).
struct AgentFinishAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "finish";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = false;
    /// The agent's closing words to the user.
    std::string final_thought{};
    /// Free-form results of the task (an object).
    ordered_json outputs = ordered_json::object();
    /// The agent's reasoning that came with the action.
    std::string thought{};
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const AgentFinishAction&, const AgentFinishAction&) = default;
};

/// The agent rejected the task (`"reject"`; not runnable).
struct AgentRejectAction {
    /// The wire `action` value.
    static constexpr std::string_view type = "reject";
    /// Whether a Runtime executes it (see is_runnable()).
    static constexpr bool runnable = false;
    /// Free-form; a string `reason` is shown in the message.
    ordered_json outputs = ordered_json::object();
    /// The agent's reasoning that came with the action.
    std::string thought{};
    /// Hard timeout in seconds (the event's top-level `timeout`); unset: none is sent.
    std::optional<double> timeout{};
    /// Stream bookkeeping: id, timestamp, source, cause.
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const AgentRejectAction&, const AgentRejectAction&) = default;
};

/// Any action. Every alternative has `type`, `runnable`, `timeout` and `meta`.
using Action = std::variant<NullAction, CmdRunAction, IPythonRunCellAction, FileReadAction, FileWriteAction,
                            FileEditAction, BrowseURLAction, BrowseInteractiveAction, MCPAction, MessageAction,
                            AgentThinkAction, AgentFinishAction, AgentRejectAction>;

// ---------------------------------------------------------------------------
// Observations (members = content, then reference extras in wire order, then meta)

/// Prompt metadata of a command (reference §3.5).
struct CmdOutputMetadata {
    /// The command's exit code; -1 while it still runs (or when unknown).
    int exit_code = -1;
    int pid = -1;  ///< `$!`: the last background job, not the command
    /// User, host, working directory and Python interpreter the prompt reported (unset: not reported).
    ///@{
    std::optional<std::string> username{}, hostname{}, working_dir{}, py_interpreter_path{};
    ///@}
    /// Text shown before and after the output to the agent (notices of a continued or timed-out command).
    ///@{
    std::string prefix{}, suffix{};
    ///@}
    /// Member-wise equality.
    friend bool operator==(const CmdOutputMetadata&, const CmdOutputMetadata&) = default;
};

/// The output of a CmdRunAction (`"run"`).
/// Members other than `content` are the wire `extras` of the same names.
struct CmdOutputObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "run";
    /// The output (stdout and stderr merged), truncated to max_cmd_output_chars unless `hidden`.
    std::string content{};
    /// The command this output belongs to.
    std::string command{};
    /// Exit code, pid and the prompt's user, host and directories.
    CmdOutputMetadata metadata{};
    /// Copied from the action: not truncated, not for the agent.
    bool hidden = false;
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};

    /// The command's exit code (`metadata.exit_code`); -1 while it still runs.
    int exit_code() const noexcept { return metadata.exit_code; }
    /// True when the exit code is 0 (the wire `success`).
    bool success() const noexcept { return metadata.exit_code == 0; }
    /// Member-wise equality.
    friend bool operator==(const CmdOutputObservation&, const CmdOutputObservation&) = default;
};

/// The output of an IPythonRunCellAction (`"run_ipython"`); `code`, `image_urls` are wire `extras`.
struct IPythonRunCellObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "run_ipython";
    /// The cell's output.
    std::string content{};
    /// The code that ran.
    std::string code{};
    /// Images the cell displayed (data URLs).
    std::optional<std::vector<std::string>> image_urls{};
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const IPythonRunCellObservation&, const IPythonRunCellObservation&) = default;
};

/// The text a FileReadAction read (`"read"`); `path`, `impl_source` are wire `extras`.
struct FileReadObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "read";
    /// The text read.
    std::string content{};
    /// The file read.
    std::string path{};
    /// Which reader produced it.
    FileReadSource impl_source = FileReadSource::default_;
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const FileReadObservation&, const FileReadObservation&) = default;
};

/// The answer to a FileWriteAction (`"write"`); `path` is a wire `extra`.
struct FileWriteObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "write";
    /// Empty (a failed write answers an ErrorObservation instead).
    std::string content{};
    /// The file written.
    std::string path{};
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const FileWriteObservation&, const FileWriteObservation&) = default;
};

/// The answer to a FileEditAction (`"edit"`).
/// Members other than `content` are the wire `extras` of the same names.
struct FileEditObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "edit";
    /// The editor's report (a snippet of the edited file, or what went wrong).
    std::string content{};
    /// The file edited.
    std::string path{};
    /// True when the file existed before the edit.
    bool prev_exist = false;
    /// The file before the edit (LLM-based edits).
    std::optional<std::string> old_content{};
    /// The file after the edit (LLM-based edits).
    std::optional<std::string> new_content{};
    /// Which editor produced it.
    FileEditSource impl_source = FileEditSource::llm_based_edit;
    /// A unified diff of the edit, when one was computed.
    std::optional<std::string> diff{};
    // `_diff_cache` is always null on the wire.
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const FileEditObservation&, const FileEditObservation&) = default;
};

/// An action failed (`"error"`): unknown action, bad arguments, a file that cannot be read, ...
struct ErrorObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "error";
    /// What went wrong, for the agent.
    std::string content{};
    /// A machine-readable kind of error (may be empty).
    std::string error_id{};
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const ErrorObservation&, const ErrorObservation&) = default;
};

/// Nothing to report (`"null"`), e.g. the answer to a non-runnable action.
struct NullObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "null";
    /// Usually empty.
    std::string content{};
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const NullObservation&, const NullObservation&) = default;
};

/// The user rejected the action (`"user_rejected"`).
struct UserRejectObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "user_rejected";
    /// Why the user rejected the action.
    std::string content{};
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const UserRejectObservation&, const UserRejectObservation&) = default;
};

/// The answer to an AgentThinkAction (`"think"`).
struct AgentThinkObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "think";
    /// The thought logged.
    std::string content{};
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const AgentThinkObservation&, const AgentThinkObservation&) = default;
};

/// A file the browser downloaded (`"download"`); `file_path` is a wire `extra`.
struct FileDownloadObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "download";
    /// A description of the download.
    std::string content{};
    /// Where the downloaded file was saved.
    std::string file_path{};
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const FileDownloadObservation&, const FileDownloadObservation&) = default;
};

/// The page after a browse action (`"browse"`).
/// Members other than `content` are the wire `extras` of the same names.
struct BrowserOutputObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "browse";
    /// The page as text.
    std::string content{};
    /// The page's URL.
    std::string url{};
    /// The action type that produced it (`browse` or `browse_interactive`).
    std::string trigger_by_action{};
    /// A screenshot of the page (base64 data URL).
    std::string screenshot{};
    /// Where the screenshot was saved, if it was.
    std::optional<std::string> screenshot_path{};
    /// The screenshot with element marks (base64 data URL).
    std::string set_of_marks{};
    /// True when the last browser action failed.
    bool error = false;
    /// Images of the task's goal (an array).
    ordered_json goal_image_urls = ordered_json::array();
    /// The URLs of all open tabs.
    std::vector<std::string> open_pages_urls{};
    /// Index of the active tab in `open_pages_urls`; -1: none.
    int active_page_index = -1;
    /// The page's DOM as BrowserGym reports it, verbatim.
    ordered_json dom_object = ordered_json::object();
    /// The accessibility tree, verbatim.
    ordered_json axtree_object = ordered_json::object();
    /// BrowserGym's extra properties per element, verbatim.
    ordered_json extra_element_properties = ordered_json::object();
    /// The last BrowserGym action run.
    std::string last_browser_action{};
    /// Its error message, if it failed.
    std::string last_browser_action_error{};
    /// The BrowserGym id of the focused element.
    std::string focused_element_bid{};
    /// True when only visible elements were reported.
    bool filter_visible_only = false;
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const BrowserOutputObservation&, const BrowserOutputObservation&) = default;
};

/// The result of an MCPAction (`"call_tool_mcp"`); `name`, `arguments` are wire `extras`.
struct MCPObservation {
    /// The wire `observation` value.
    static constexpr std::string_view type = "mcp";
    /// The tool's result (JSON text).
    std::string content{};
    /// The MCP tool that was called.
    std::string name{};
    /// The arguments it was called with, verbatim.
    ordered_json arguments = ordered_json::object();
    /// Stream bookkeeping: id, timestamp, source, cause (the id of the action it answers).
    EventMeta meta{};
    /// Member-wise equality.
    friend bool operator==(const MCPObservation&, const MCPObservation&) = default;
};

/// Any observation. Every alternative has `type`, `content` and `meta`.
using Observation =
    std::variant<NullObservation, CmdOutputObservation, IPythonRunCellObservation, FileReadObservation,
                 FileWriteObservation, FileEditObservation, ErrorObservation, UserRejectObservation,
                 AgentThinkObservation, FileDownloadObservation, BrowserOutputObservation, MCPObservation>;

/// An action or an observation, as an EventStream holds them.
using Event = std::variant<Action, Observation>;

// ---------------------------------------------------------------------------
// Small helpers

/// The wire `action` value of the alternative held (`"run"`, `"read"`, ...).
inline std::string_view action_type(const Action& a) noexcept {
    return std::visit([](const auto& x) -> std::string_view { return std::decay_t<decltype(x)>::type; }, a);
}
/// The wire `observation` value of the alternative held (`"run"`, `"error"`, ...).
inline std::string_view observation_type(const Observation& o) noexcept {
    return std::visit([](const auto& x) -> std::string_view { return std::decay_t<decltype(x)>::type; }, o);
}
/// Runnable actions are the ones a Runtime executes (run, run_ipython, read, write, edit, browse*, MCP).
inline bool is_runnable(const Action& a) noexcept {
    return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::runnable; }, a);
}

/// The EventMeta of whatever alternative is held (a reference into the event).
///@{
inline EventMeta& meta(Action& a) noexcept {
    return std::visit([](auto& x) -> EventMeta& { return x.meta; }, a);
}
inline const EventMeta& meta(const Action& a) noexcept {
    return std::visit([](const auto& x) -> const EventMeta& { return x.meta; }, a);
}
inline EventMeta& meta(Observation& o) noexcept {
    return std::visit([](auto& x) -> EventMeta& { return x.meta; }, o);
}
inline const EventMeta& meta(const Observation& o) noexcept {
    return std::visit([](const auto& x) -> const EventMeta& { return x.meta; }, o);
}
inline EventMeta& meta(Event& e) noexcept {
    return std::visit([](auto& x) -> EventMeta& { return meta(x); }, e);
}
inline const EventMeta& meta(const Event& e) noexcept {
    return std::visit([](const auto& x) -> const EventMeta& { return meta(x); }, e);
}
///@}

/// The action's hard timeout in seconds (unset: none).
inline std::optional<double> timeout_of(const Action& a) noexcept {
    return std::visit([](const auto& x) { return x.timeout; }, a);
}
/// Sets an action's hard timeout; for `run` also sets blocking (default true, as in the reference).
inline void set_hard_timeout(Action& a, std::optional<double> seconds, bool blocking = true) {
    std::visit(
        [&](auto& x) {
            x.timeout = seconds;
            if constexpr (std::is_same_v<std::decay_t<decltype(x)>, CmdRunAction>) x.blocking = blocking;
        },
        a);
}

/// Command output longer than this many code points is truncated (OpenHands' limit).
inline constexpr std::size_t max_cmd_output_chars = 30000;
/// The text that replaces the middle of a truncated output (OpenHands' exact notice).
inline constexpr std::string_view truncation_notice = "\n[... Observation truncated due to length ...]\n";

/// Number of Unicode code points in a UTF-8 string (Python's len()).
inline std::size_t utf8_length(std::string_view s) noexcept {
    std::size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}

namespace detail {
/// Byte offset of code point number `index` (or s.size() past the end).
inline std::size_t utf8_offset(std::string_view s, std::size_t index) noexcept {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
            if (seen == index) return i;
            ++seen;
        }
    }
    return s.size();
}
}  // namespace detail

/// Output longer than `max_chars` code points keeps its first and last max_chars/2
/// code points around the truncation notice (never splits a code point).
inline std::string truncate_observation_content(std::string content, std::size_t max_chars = max_cmd_output_chars) {
    const std::size_t length = utf8_length(content);
    if (length <= max_chars) return content;
    const std::size_t half = max_chars / 2;
    const std::size_t head_end = detail::utf8_offset(content, half);
    const std::size_t tail_begin = detail::utf8_offset(content, length - half);
    std::string out;
    out.reserve(head_end + truncation_notice.size() + (content.size() - tail_begin));
    out.append(content, 0, head_end);
    out.append(truncation_notice);
    out.append(content, tail_begin, std::string::npos);
    return out;
}

/// Builds a command observation the way the reference constructor does (truncates unless hidden).
inline CmdOutputObservation make_cmd_output(std::string content, std::string command, CmdOutputMetadata metadata,
                                            bool hidden = false) {
    CmdOutputObservation obs;
    obs.content = hidden ? std::move(content) : truncate_observation_content(std::move(content));
    obs.command = std::move(command);
    obs.metadata = std::move(metadata);
    obs.hidden = hidden;
    return obs;
}

/// The agent-facing text: prefix + content + suffix + working dir / interpreter / exit code lines.
inline std::string to_agent_text(const CmdOutputObservation& obs) {
    std::string out = obs.metadata.prefix + obs.content + obs.metadata.suffix;
    if (obs.metadata.working_dir && !obs.metadata.working_dir->empty())
        out += "\n[Current working directory: " + *obs.metadata.working_dir + "]";
    if (obs.metadata.py_interpreter_path && !obs.metadata.py_interpreter_path->empty())
        out += "\n[Python interpreter: " + *obs.metadata.py_interpreter_path + "]";
    if (obs.metadata.exit_code != -1)
        out += "\n[Command finished with exit code " + std::to_string(obs.metadata.exit_code) + "]";
    return out;
}

// ---------------------------------------------------------------------------
// Serialisation API (definitions below)

/// The `metadata` object of a command observation's extras (all eight keys, in wire order).
inline ordered_json to_json(const CmdOutputMetadata& m);
/// Lenient: numbers given as strings are parsed float->int (failure -> -1); unknown keys ignored.
///@{
inline CmdOutputMetadata cmd_output_metadata_from_json(const ordered_json& j);
inline CmdOutputMetadata cmd_output_metadata_from_json(const nlohmann::json& j);
///@}

/// The OpenHands JSON of an event, keys in the wire order (see the top of this header).
///@{
inline ordered_json to_json(const Action& a);
inline ordered_json to_json(const Observation& o);
inline ordered_json to_json(const Event& e);
///@}
/// Compact dump in wire order; invalid UTF-8 is replaced (U+FFFD) instead of throwing.
///@{
inline std::string to_wire(const Action& a);
inline std::string to_wire(const Observation& o);
inline std::string to_wire(const Event& e);
///@}
/// The per-type `message` text.
///@{
inline std::string message_of(const Action& a);
inline std::string message_of(const Observation& o);
///@}

/// Parses an OpenHands action (legacy argument names accepted, reference §3.6).
/// Throws runbox::error errc::bad_response naming the problem: not an object, no or unknown
/// `action`, a missing required or unexpected argument, a field of the wrong JSON type.
///@{
inline Action action_from_json(const ordered_json& j);
inline Action action_from_json(const nlohmann::json& j);
///@}
/// Parses an OpenHands observation (legacy flat `exit_code` / `command_id` accepted); a command's
/// `content` is truncated to max_cmd_output_chars unless hidden. Throws runbox::error
/// errc::bad_response as action_from_json does (unknown extras of `run` are tolerated).
///@{
inline Observation observation_from_json(const ordered_json& j);
inline Observation observation_from_json(const nlohmann::json& j);
///@}
/// An action if `j` has an `action` key, an observation if it has `observation`;
/// otherwise, or when the event is invalid, throws runbox::error errc::bad_response.
///@{
inline Event event_from_json(const ordered_json& j);
inline Event event_from_json(const nlohmann::json& j);
///@}

// ---------------------------------------------------------------------------
// Implementation

namespace detail {

[[noreturn]] inline void bad_event(std::string message) { throw error(errc::bad_response, std::move(message)); }

/// Internal: a field had the wrong JSON type; wrapped with the event type by the caller.
struct field_error {
    std::string message;
};
[[noreturn]] inline void wrong_type(const char* name, const char* what) {
    throw field_error{std::string(name) + " must be " + what};
}

template <class T, class M>
struct field_t {
    const char* name;
    M T::*ptr;
    bool required;
};
template <class T, class M>
constexpr field_t<T, M> field(const char* name, M T::*ptr, bool required = false) {
    return {name, ptr, required};
}

// --- encoding -------------------------------------------------------------
inline ordered_json encode(const std::string& v) { return v; }
inline ordered_json encode(bool v) { return v; }
inline ordered_json encode(int v) { return v; }
inline ordered_json encode(double v) { return v; }
inline ordered_json encode(const ordered_json& v) { return v; }
inline ordered_json encode(ConfirmationState v) { return std::string(to_string(v)); }
inline ordered_json encode(SecurityRisk v) { return static_cast<int>(v); }
inline ordered_json encode(FileReadSource v) { return std::string(to_string(v)); }
inline ordered_json encode(FileEditSource v) { return std::string(to_string(v)); }
inline ordered_json encode(const CmdOutputMetadata& m) { return to_json(m); }
template <class T>
ordered_json encode(const std::vector<T>& v) {
    ordered_json out = ordered_json::array();
    for (const auto& x : v) out.push_back(encode(x));
    return out;
}
template <class T>
ordered_json encode(const std::optional<T>& v) {
    return v ? encode(*v) : ordered_json(nullptr);
}

// --- decoding (strict types; the reference accepts what its dataclasses accept) ---
/// An integer from an integer, an integral float, or a string holding an integer.
inline std::optional<long long> as_integer(const ordered_json& j) {
    if (j.is_number_unsigned()) {
        auto v = j.get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
        return static_cast<long long>(v);
    }
    if (j.is_number_integer()) return j.get<long long>();
    if (j.is_number_float()) {
        double d = j.get<double>();
        if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.0e18) return static_cast<long long>(d);
        return std::nullopt;
    }
    if (j.is_string()) {
        const auto& s = j.get_ref<const std::string&>();
        if (s.empty()) return std::nullopt;
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(s.c_str(), &end, 10);
        if (errno != 0 || end != s.c_str() + s.size()) return std::nullopt;
        return v;
    }
    return std::nullopt;
}

inline void decode(const ordered_json& j, std::string& out, const char* name) {
    if (!j.is_string()) wrong_type(name, "a string");
    out = j.get<std::string>();
}
inline void decode(const ordered_json& j, bool& out, const char* name) {
    if (!j.is_boolean()) wrong_type(name, "a boolean");
    out = j.get<bool>();
}
inline void decode(const ordered_json& j, int& out, const char* name) {
    auto v = as_integer(j);
    if (!v || *v < INT32_MIN || *v > INT32_MAX) wrong_type(name, "an integer");
    out = static_cast<int>(*v);
}
inline void decode(const ordered_json& j, double& out, const char* name) {
    if (!j.is_number()) wrong_type(name, "a number");
    out = j.get<double>();
}
inline void decode(const ordered_json& j, ordered_json& out, const char*) { out = j; }
inline void decode(const ordered_json& j, ConfirmationState& out, const char* name) {
    auto v = j.is_string() ? confirmation_state_from_string(j.get_ref<const std::string&>()) : std::nullopt;
    if (!v) wrong_type(name, "one of confirmed, rejected, awaiting_confirmation");
    out = *v;
}
/// Legacy rule: an invalid security_risk is dropped (the default stays), never an error.
inline void decode(const ordered_json& j, SecurityRisk& out, const char*) {
    auto v = (j.is_number_integer() || j.is_number_unsigned()) ? as_integer(j) : std::nullopt;
    if (v && *v >= -1 && *v <= 2) out = static_cast<SecurityRisk>(*v);
}
inline void decode(const ordered_json& j, FileReadSource& out, const char* name) {
    if (j == "default") out = FileReadSource::default_;
    else if (j == "oh_aci") out = FileReadSource::oh_aci;
    else wrong_type(name, "\"default\" or \"oh_aci\"");
}
inline void decode(const ordered_json& j, FileEditSource& out, const char* name) {
    if (j == "llm_based_edit") out = FileEditSource::llm_based_edit;
    else if (j == "oh_aci") out = FileEditSource::oh_aci;
    else wrong_type(name, "\"llm_based_edit\" or \"oh_aci\"");
}
inline void decode(const ordered_json& j, CmdOutputMetadata& out, const char* name) {
    if (j.is_null()) {
        out = CmdOutputMetadata{};
        return;
    }
    if (!j.is_object()) wrong_type(name, "an object");
    out = cmd_output_metadata_from_json(j);
}
template <class T>
void decode(const ordered_json& j, std::vector<T>& out, const char* name) {
    if (!j.is_array()) wrong_type(name, "a list");
    std::vector<T> v;
    v.reserve(j.size());
    for (const auto& x : j) {
        T item{};
        decode(x, item, name);
        v.push_back(std::move(item));
    }
    out = std::move(v);
}
template <class T>
void decode(const ordered_json& j, std::optional<T>& out, const char* name) {
    if (j.is_null()) {
        out.reset();
        return;
    }
    T v{};
    decode(j, v, name);
    out = std::move(v);
}

// --- Python repr (the MCP action's message shows its arguments as a Python dict) ---
inline void python_repr(std::string& out, const ordered_json& v);
inline void python_repr(std::string& out, const ordered_json& v) {
    switch (v.type()) {
        case ordered_json::value_t::null: out += "None"; return;
        case ordered_json::value_t::boolean: out += v.get<bool>() ? "True" : "False"; return;
        case ordered_json::value_t::string: append_python_str_repr(out, v.get_ref<const std::string&>()); return;
        case ordered_json::value_t::array: {
            out += '[';
            bool first = true;
            for (const auto& x : v) {
                if (!first) out += ", ";
                first = false;
                python_repr(out, x);
            }
            out += ']';
            return;
        }
        case ordered_json::value_t::object: {
            out += '{';
            bool first = true;
            for (auto it = v.begin(); it != v.end(); ++it) {
                if (!first) out += ", ";
                first = false;
                append_python_str_repr(out, it.key());
                out += ": ";
                python_repr(out, it.value());
            }
            out += '}';
            return;
        }
        default: out += v.dump(); return;
    }
}
inline std::string python_repr(const ordered_json& v) {
    std::string out;
    python_repr(out, v);
    return out;
}

// --- a Python literal reader (for legacy `print(file_editor(**{...}))`) ---
class python_literal_reader {
public:
    explicit python_literal_reader(std::string_view src, std::size_t max_depth = max_nesting_depth)
        : s_(src), max_depth_(max_depth) {}
    /// The literal as JSON, or nullopt when the text is not one complete literal. A literal
    /// nesting deeper than `max_depth` throws runbox::error (errc::bad_response): the reader
    /// recurses once per level, so the input must not choose the depth.
    std::optional<ordered_json> read() {
        try {
            ordered_json v = value();
            skip_ws();
            if (i_ != s_.size()) return std::nullopt;
            return v;
        } catch (const failure&) {
            return std::nullopt;
        }
    }

private:
    struct failure {};
    std::string_view s_;
    std::size_t max_depth_;
    std::size_t i_ = 0;
    std::size_t depth_ = 0;

    /// Counts one level of nesting for the lifetime of a dict()/list() call.
    struct nesting {
        python_literal_reader& r;
        explicit nesting(python_literal_reader& reader) : r(reader) {
            if (++r.depth_ > r.max_depth_) {
                throw error(errc::bad_response,
                            "Python literal nests deeper than " + std::to_string(r.max_depth_) + " levels");
            }
        }
        ~nesting() { --r.depth_; }
        nesting(const nesting&) = delete;
        nesting& operator=(const nesting&) = delete;
    };

    void skip_ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
    }
    bool eat(char c) {
        skip_ws();
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    ordered_json value() {
        skip_ws();
        if (i_ >= s_.size()) throw failure{};
        const char c = s_[i_];
        if (c == '{') return dict();
        if (c == '[' || c == '(') return list(c == '[' ? ']' : ')');
        if (c == '\'' || c == '"') return ordered_json(string());
        if (c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9')) return number();
        for (auto [word, val] : {std::pair<std::string_view, ordered_json>{"True", true},
                                 {"False", false}, {"None", nullptr}}) {
            if (s_.substr(i_, word.size()) == word) {
                i_ += word.size();
                return val;
            }
        }
        throw failure{};
    }
    ordered_json dict() {
        const nesting level(*this);
        ++i_;
        ordered_json out = ordered_json::object();
        if (eat('}')) return out;
        while (true) {
            ordered_json key = value();
            if (!key.is_string() || !eat(':')) throw failure{};
            out[key.get<std::string>()] = value();
            if (eat(',')) {
                if (eat('}')) return out;
                continue;
            }
            if (eat('}')) return out;
            throw failure{};
        }
    }
    ordered_json list(char close) {
        const nesting level(*this);
        ++i_;
        ordered_json out = ordered_json::array();
        if (eat(close)) return out;
        while (true) {
            out.push_back(value());
            if (eat(',')) {
                if (eat(close)) return out;
                continue;
            }
            if (eat(close)) return out;
            throw failure{};
        }
    }
    ordered_json number() {
        std::string text;
        while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' ||
                                  s_[i_] == '-' || s_[i_] == '+' || s_[i_] == '_')) {
            if (s_[i_] != '_') text += s_[i_];
            ++i_;
        }
        if (text.empty()) throw failure{};
        char* end = nullptr;
        const bool is_float = text.find_first_of(".eE") != std::string::npos;
        if (is_float) {
            double d = std::strtod(text.c_str(), &end);
            if (end != text.c_str() + text.size()) throw failure{};
            return d;
        }
        errno = 0;
        long long v = std::strtoll(text.c_str(), &end, 10);
        if (errno != 0 || end != text.c_str() + text.size()) throw failure{};
        return v;
    }
    static void append_utf8(std::string& out, unsigned long cp) {
        if (cp > 0x10FFFF || !detail::append_utf8(out, static_cast<char32_t>(cp))) throw failure{};
    }
    unsigned long hex_digits(std::size_t n) {
        if (i_ + n > s_.size()) throw failure{};
        const std::string digits(s_.substr(i_, n));
        char* end = nullptr;
        const unsigned long v = std::strtoul(digits.c_str(), &end, 16);
        if (end != digits.c_str() + n) throw failure{};
        i_ += n;
        return v;
    }
    std::string string() {
        const char q = s_[i_];
        const bool triple = s_.substr(i_, 3) == std::string(3, q);
        i_ += triple ? 3 : 1;
        std::string out;
        while (true) {
            if (i_ >= s_.size()) throw failure{};
            if (triple && s_.substr(i_, 3) == std::string(3, q)) {
                i_ += 3;
                return out;
            }
            const char c = s_[i_];
            if (!triple && c == q) {
                ++i_;
                return out;
            }
            if (!triple && c == '\n') throw failure{};
            ++i_;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i_ >= s_.size()) throw failure{};
            const char e = s_[i_++];
            switch (e) {
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'a': out += '\a'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'v': out += '\v'; break;
                case '0': out += '\0'; break;
                case '\\': case '\'': case '"': out += e; break;
                case '\n': break;  // line continuation
                case 'x': append_utf8(out, hex_digits(2)); break;
                case 'u': append_utf8(out, hex_digits(4)); break;
                case 'U': append_utf8(out, hex_digits(8)); break;
                default:
                    out += '\\';
                    out += e;
                    break;
            }
        }
    }
};

// --- per-type wire descriptions -----------------------------------------------
template <class T>
struct wire;

template <>
struct wire<NullAction> {
    static auto fields() { return std::tuple<>{}; }
    static std::string message(const NullAction&) { return "No action"; }
};
template <>
struct wire<CmdRunAction> {
    using T = CmdRunAction;
    static auto fields() {
        return std::make_tuple(field("command", &T::command, true), field("is_input", &T::is_input),
                               field("thought", &T::thought), field("blocking", &T::blocking),
                               field("is_static", &T::is_static), field("cwd", &T::cwd), field("hidden", &T::hidden),
                               field("confirmation_state", &T::confirmation_state),
                               field("security_risk", &T::security_risk));
    }
    static std::string message(const T& a) { return "Running command: " + a.command; }
};
template <>
struct wire<IPythonRunCellAction> {
    using T = IPythonRunCellAction;
    static auto fields() {
        return std::make_tuple(field("code", &T::code, true), field("thought", &T::thought),
                               field("include_extra", &T::include_extra),
                               field("confirmation_state", &T::confirmation_state),
                               field("security_risk", &T::security_risk),
                               field("kernel_init_code", &T::kernel_init_code));
    }
    static std::string message(const T& a) { return "Running Python code interactively: " + a.code; }
};
template <>
struct wire<FileReadAction> {
    using T = FileReadAction;
    static auto fields() {
        return std::make_tuple(field("path", &T::path, true), field("start", &T::start), field("end", &T::end),
                               field("thought", &T::thought), field("security_risk", &T::security_risk),
                               field("impl_source", &T::impl_source), field("view_range", &T::view_range));
    }
    static std::string message(const T& a) { return "Reading file: " + a.path; }
};
template <>
struct wire<FileWriteAction> {
    using T = FileWriteAction;
    static auto fields() {
        return std::make_tuple(field("path", &T::path, true), field("content", &T::content, true),
                               field("start", &T::start), field("end", &T::end), field("thought", &T::thought),
                               field("security_risk", &T::security_risk));
    }
    static std::string message(const T& a) { return "Writing file: " + a.path; }
};
template <>
struct wire<FileEditAction> {
    using T = FileEditAction;
    static auto fields() {
        return std::make_tuple(field("path", &T::path, true), field("command", &T::command),
                               field("file_text", &T::file_text), field("old_str", &T::old_str),
                               field("new_str", &T::new_str), field("insert_line", &T::insert_line),
                               field("content", &T::content), field("start", &T::start), field("end", &T::end),
                               field("thought", &T::thought), field("security_risk", &T::security_risk),
                               field("impl_source", &T::impl_source));
    }
    static std::string message(const T&) { return ""; }
};
template <>
struct wire<BrowseURLAction> {
    using T = BrowseURLAction;
    static auto fields() {
        return std::make_tuple(field("url", &T::url, true), field("thought", &T::thought),
                               field("security_risk", &T::security_risk), field("return_axtree", &T::return_axtree));
    }
    static std::string message(const T& a) { return "I am browsing the URL: " + a.url; }
};
template <>
struct wire<BrowseInteractiveAction> {
    using T = BrowseInteractiveAction;
    static auto fields() {
        return std::make_tuple(field("browser_actions", &T::browser_actions, true), field("thought", &T::thought),
                               field("browsergym_send_msg_to_user", &T::browsergym_send_msg_to_user),
                               field("security_risk", &T::security_risk), field("return_axtree", &T::return_axtree));
    }
    static std::string message(const T& a) {
        return "I am interacting with the browser:\n```\n" + a.browser_actions + "\n```";
    }
};
template <>
struct wire<MCPAction> {
    using T = MCPAction;
    static auto fields() {
        return std::make_tuple(field("name", &T::name), field("arguments", &T::arguments),
                               field("thought", &T::thought), field("security_risk", &T::security_risk));
    }
    static std::string message(const T& a) {
        return "I am interacting with the MCP server with name:\n```\n" + a.name + "\n```\nand arguments:\n```\n" +
               python_repr(a.arguments) + "\n```";
    }
};
template <>
struct wire<MessageAction> {
    using T = MessageAction;
    static auto fields() {
        return std::make_tuple(field("content", &T::content, true), field("file_urls", &T::file_urls),
                               field("image_urls", &T::image_urls), field("wait_for_response", &T::wait_for_response),
                               field("security_risk", &T::security_risk));
    }
    static std::string message(const T& a) { return a.content; }
};
template <>
struct wire<AgentThinkAction> {
    using T = AgentThinkAction;
    static auto fields() { return std::make_tuple(field("thought", &T::thought)); }
    static std::string message(const T& a) { return "I am thinking...: " + a.thought; }
};
template <>
struct wire<AgentFinishAction> {
    using T = AgentFinishAction;
    static auto fields() {
        return std::make_tuple(field("final_thought", &T::final_thought), field("outputs", &T::outputs),
                               field("thought", &T::thought));
    }
    static std::string message(const T& a) {
        return a.thought.empty() ? std::string("All done! What's next on the agenda?") : a.thought;
    }
};
template <>
struct wire<AgentRejectAction> {
    using T = AgentRejectAction;
    static auto fields() { return std::make_tuple(field("outputs", &T::outputs), field("thought", &T::thought)); }
    static std::string message(const T& a) {
        std::string out = "Task is rejected by the agent.";
        if (a.outputs.is_object()) {
            auto it = a.outputs.find("reason");
            if (it != a.outputs.end() && it->is_string() && !it->get_ref<const std::string&>().empty())
                out += " Reason: " + it->get<std::string>();
        }
        return out;
    }
};

template <>
struct wire<CmdOutputObservation> {
    using T = CmdOutputObservation;
    static constexpr bool has_success = true;
    static auto fields() {
        return std::make_tuple(field("command", &T::command, true), field("metadata", &T::metadata),
                               field("hidden", &T::hidden));
    }
    static std::string message(const T& o) {
        return "Command `" + o.command + "` executed with exit code " + std::to_string(o.metadata.exit_code) + ".";
    }
    static bool success(const T& o) { return o.metadata.exit_code == 0; }
};
template <>
struct wire<IPythonRunCellObservation> {
    using T = IPythonRunCellObservation;
    static constexpr bool has_success = true;
    static auto fields() { return std::make_tuple(field("code", &T::code, true), field("image_urls", &T::image_urls)); }
    static std::string message(const T&) { return "Code executed in IPython cell."; }
    static bool success(const T&) { return true; }
};
template <>
struct wire<FileReadObservation> {
    using T = FileReadObservation;
    static constexpr bool has_success = false;
    static auto fields() { return std::make_tuple(field("path", &T::path, true), field("impl_source", &T::impl_source)); }
    static std::string message(const T& o) { return "I read the file " + o.path + "."; }
};
template <>
struct wire<FileWriteObservation> {
    using T = FileWriteObservation;
    static constexpr bool has_success = false;
    static auto fields() { return std::make_tuple(field("path", &T::path, true)); }
    static std::string message(const T& o) { return "I wrote to the file " + o.path + "."; }
};
template <>
struct wire<FileEditObservation> {
    using T = FileEditObservation;
    static constexpr bool has_success = false;
    static auto fields() {
        return std::make_tuple(field("path", &T::path), field("prev_exist", &T::prev_exist),
                               field("old_content", &T::old_content), field("new_content", &T::new_content),
                               field("impl_source", &T::impl_source), field("diff", &T::diff));
    }
    static std::string message(const T& o) { return "I edited the file " + o.path + "."; }
};
template <>
struct wire<ErrorObservation> {
    using T = ErrorObservation;
    static constexpr bool has_success = false;
    static auto fields() { return std::make_tuple(field("error_id", &T::error_id)); }
    static std::string message(const T& o) { return o.content; }
};
template <>
struct wire<NullObservation> {
    static constexpr bool has_success = false;
    static auto fields() { return std::tuple<>{}; }
    static std::string message(const NullObservation&) { return "No observation"; }
};
template <>
struct wire<UserRejectObservation> {
    static constexpr bool has_success = false;
    static auto fields() { return std::tuple<>{}; }
    static std::string message(const UserRejectObservation& o) { return o.content; }
};
template <>
struct wire<AgentThinkObservation> {
    static constexpr bool has_success = false;
    static auto fields() { return std::tuple<>{}; }
    static std::string message(const AgentThinkObservation& o) { return o.content; }
};
template <>
struct wire<FileDownloadObservation> {
    using T = FileDownloadObservation;
    static constexpr bool has_success = false;
    static auto fields() { return std::make_tuple(field("file_path", &T::file_path, true)); }
    static std::string message(const T& o) { return "Downloaded the file at location: " + o.file_path; }
};
template <>
struct wire<BrowserOutputObservation> {
    using T = BrowserOutputObservation;
    static constexpr bool has_success = false;
    static auto fields() {
        return std::make_tuple(
            field("url", &T::url, true), field("trigger_by_action", &T::trigger_by_action, true),
            field("screenshot", &T::screenshot), field("screenshot_path", &T::screenshot_path),
            field("set_of_marks", &T::set_of_marks), field("error", &T::error),
            field("goal_image_urls", &T::goal_image_urls), field("open_pages_urls", &T::open_pages_urls),
            field("active_page_index", &T::active_page_index), field("dom_object", &T::dom_object),
            field("axtree_object", &T::axtree_object), field("extra_element_properties", &T::extra_element_properties),
            field("last_browser_action", &T::last_browser_action),
            field("last_browser_action_error", &T::last_browser_action_error),
            field("focused_element_bid", &T::focused_element_bid),
            field("filter_visible_only", &T::filter_visible_only));
    }
    static std::string message(const T& o) { return "Visited " + o.url; }
};
template <>
struct wire<MCPObservation> {
    using T = MCPObservation;
    static constexpr bool has_success = false;
    static auto fields() { return std::make_tuple(field("name", &T::name), field("arguments", &T::arguments)); }
    static std::string message(const T& o) { return o.content; }
};

// --- generic writers ----------------------------------------------------------
inline void write_head(ordered_json& j, const EventMeta& m, std::string message) {
    if (m.id && *m.id != -1) j["id"] = *m.id;
    if (m.timestamp) j["timestamp"] = *m.timestamp;
    if (m.source) j["source"] = std::string(to_string(*m.source));
    j["message"] = std::move(message);
    if (m.cause) j["cause"] = *m.cause;
}
inline void write_llm(ordered_json& j, const EventMeta& m) {
    if (m.tool_call_metadata && !m.tool_call_metadata->is_null()) j["tool_call_metadata"] = *m.tool_call_metadata;
    if (m.llm_metrics && !m.llm_metrics->is_null()) j["llm_metrics"] = *m.llm_metrics;
}
template <class T>
ordered_json fields_to_json(const T& x) {
    ordered_json out = ordered_json::object();
    std::apply([&](const auto&... f) { ((out[f.name] = encode(x.*(f.ptr))), ...); }, wire<T>::fields());
    return out;
}
template <class A>
ordered_json action_to_json(const A& a) {
    ordered_json j = ordered_json::object();
    write_head(j, a.meta, wire<A>::message(a));
    j["action"] = std::string(A::type);
    write_llm(j, a.meta);
    j["args"] = fields_to_json(a);
    if (a.timeout) j["timeout"] = *a.timeout;
    return j;
}
template <class O>
ordered_json observation_to_json(const O& o) {
    ordered_json j = ordered_json::object();
    write_head(j, o.meta, wire<O>::message(o));
    j["observation"] = std::string(O::type);
    write_llm(j, o.meta);
    j["content"] = o.content;
    ordered_json extras = fields_to_json(o);
    if constexpr (std::is_same_v<O, FileEditObservation>) extras["_diff_cache"] = nullptr;
    j["extras"] = std::move(extras);
    if constexpr (wire<O>::has_success) j["success"] = wire<O>::success(o);
    return j;
}

// --- generic readers ------------------------------------------------------------
inline std::string quoted_list(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) {
        if (!out.empty()) out += ", ";
        out += "'" + n + "'";
    }
    return out;
}

/// Reads the described fields of T from `obj`. `what` is e.g. "action=run has the wrong arguments".
template <class T>
void read_fields(T& out, const ordered_json& obj, const std::string& what, bool tolerate_unknown) {
    const auto fields = wire<T>::fields();
    if (!tolerate_unknown) {
        std::vector<std::string> unknown;
        for (auto it = obj.begin(); it != obj.end(); ++it) {
            const bool known = std::apply([&](const auto&... f) { return ((it.key() == f.name) || ... || false); },
                                          fields);
            if (!known) unknown.push_back(it.key());
        }
        if (!unknown.empty()) bad_event(what + ": unexpected keyword argument(s) " + quoted_list(unknown));
    }
    std::vector<std::string> missing;
    try {
        std::apply(
            [&](const auto&... f) {
                (
                    [&] {
                        auto it = obj.find(f.name);
                        if (it != obj.end()) decode(*it, out.*(f.ptr), f.name);
                        else if (f.required) missing.emplace_back(f.name);
                    }(),
                    ...);
            },
            fields);
    } catch (const field_error& e) {
        bad_event(what + ": " + e.message);
    }
    if (!missing.empty()) bad_event(what + ": missing required argument(s) " + quoted_list(missing));
}

inline void read_meta(const ordered_json& j, EventMeta& m) {
    if (auto it = j.find("id"); it != j.end() && !it->is_null()) {
        auto v = (it->is_number_integer() || it->is_number_unsigned()) ? as_integer(*it) : std::nullopt;
        if (!v) bad_event("event id must be an integer");
        m.id = *v == -1 ? std::nullopt : std::optional<std::int64_t>(*v);
    }
    if (auto it = j.find("timestamp"); it != j.end() && !it->is_null()) {
        if (!it->is_string()) bad_event("event timestamp must be a string");
        m.timestamp = it->get<std::string>();
    }
    if (auto it = j.find("source"); it != j.end() && !it->is_null()) {
        auto v = it->is_string() ? event_source_from_string(it->get_ref<const std::string&>()) : std::nullopt;
        if (!v) bad_event("event source must be agent, user or environment");
        m.source = v;
    }
    if (auto it = j.find("cause"); it != j.end() && !it->is_null()) {
        auto v = (it->is_number_integer() || it->is_number_unsigned()) ? as_integer(*it) : std::nullopt;
        if (!v) bad_event("event cause must be an integer");
        m.cause = *v;
    }
    if (auto it = j.find("tool_call_metadata"); it != j.end() && !it->is_null()) m.tool_call_metadata = *it;
    if (auto it = j.find("llm_metrics"); it != j.end() && !it->is_null()) m.llm_metrics = *it;
}

/// Calls f(std::type_identity<Alt>{}) for the alternative of V whose `type` equals `type`.
template <class V, class F, std::size_t... I>
bool dispatch_type(std::string_view type, F&& f, std::index_sequence<I...>) {
    return ((std::variant_alternative_t<I, V>::type == type
                 ? (f(std::type_identity<std::variant_alternative_t<I, V>>{}), true)
                 : false) ||
            ...);
}
template <class V, class F>
bool dispatch_type(std::string_view type, F&& f) {
    return dispatch_type<V>(type, std::forward<F>(f), std::make_index_sequence<std::variant_size_v<V>>{});
}

/// Legacy `translated_ipython_code` = `print(file_editor(**{...}))`: its dict becomes args.
inline void expand_translated_ipython_code(ordered_json& args) {
    auto it = args.find("translated_ipython_code");
    if (it == args.end()) return;
    const ordered_json code = *it;
    args.erase(it);
    if (!code.is_string()) return;
    constexpr std::string_view head = "print(file_editor(**";
    std::string_view text = code.get_ref<const std::string&>();
    if (text.substr(0, head.size()) != head) return;
    const auto close = text.find("))", head.size());  // the reference's non-greedy `(.*?)\)\)`
    if (close == std::string_view::npos) return;
    const std::string_view inner = text.substr(head.size(), close - head.size());
    if (inner.find('\n') != std::string_view::npos) return;  // `.` does not match a newline
    auto parsed = python_literal_reader(inner).read();
    if (!parsed || !parsed->is_object()) return;
    for (auto kv = parsed->begin(); kv != parsed->end(); ++kv) args[kv.key()] = kv.value();
}

}  // namespace detail

inline ordered_json to_json(const CmdOutputMetadata& m) {
    ordered_json j = ordered_json::object();
    j["exit_code"] = m.exit_code;
    j["pid"] = m.pid;
    j["username"] = detail::encode(m.username);
    j["hostname"] = detail::encode(m.hostname);
    j["working_dir"] = detail::encode(m.working_dir);
    j["py_interpreter_path"] = detail::encode(m.py_interpreter_path);
    j["prefix"] = m.prefix;
    j["suffix"] = m.suffix;
    return j;
}

namespace detail {
/// Prompt numbers arrive as strings: parsed float -> int, anything unparsable -> -1.
inline int lenient_int(const ordered_json& v) {
    double d = 0;
    if (v.is_number_integer() || v.is_number_unsigned()) {
        auto i = as_integer(v);
        if (!i || *i < INT32_MIN || *i > INT32_MAX) return -1;
        return static_cast<int>(*i);
    }
    if (v.is_number_float()) {
        d = v.get<double>();
    } else if (v.is_string()) {
        std::string s = v.get<std::string>();
        const auto first = s.find_first_not_of(" \t\n\r\f\v");
        if (first == std::string::npos) return -1;
        s = s.substr(first, s.find_last_not_of(" \t\n\r\f\v") - first + 1);
        if (s.find_first_of("xX") != std::string::npos) return -1;  // strtod reads hex floats, Python's float() does not
        char* end = nullptr;
        d = std::strtod(s.c_str(), &end);
        if (end != s.c_str() + s.size()) return -1;
    } else {
        return -1;
    }
    if (!std::isfinite(d) || d <= static_cast<double>(INT32_MIN) - 1.0 || d >= static_cast<double>(INT32_MAX) + 1.0)
        return -1;
    return static_cast<int>(std::trunc(d));
}
inline std::optional<std::string> optional_string(const ordered_json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}
}  // namespace detail

inline CmdOutputMetadata cmd_output_metadata_from_json(const ordered_json& j) {
    CmdOutputMetadata m;
    if (!j.is_object()) return m;
    if (auto it = j.find("exit_code"); it != j.end()) m.exit_code = detail::lenient_int(*it);
    if (auto it = j.find("pid"); it != j.end()) m.pid = detail::lenient_int(*it);
    m.username = detail::optional_string(j, "username");
    m.hostname = detail::optional_string(j, "hostname");
    m.working_dir = detail::optional_string(j, "working_dir");
    m.py_interpreter_path = detail::optional_string(j, "py_interpreter_path");
    m.prefix = detail::optional_string(j, "prefix").value_or("");
    m.suffix = detail::optional_string(j, "suffix").value_or("");
    return m;
}
inline CmdOutputMetadata cmd_output_metadata_from_json(const nlohmann::json& j) {
    return cmd_output_metadata_from_json(ordered_json(j));
}

inline ordered_json to_json(const Action& a) {
    return std::visit([](const auto& x) { return detail::action_to_json(x); }, a);
}
inline ordered_json to_json(const Observation& o) {
    return std::visit([](const auto& x) { return detail::observation_to_json(x); }, o);
}
inline ordered_json to_json(const Event& e) {
    return std::visit([](const auto& x) { return to_json(x); }, e);
}
inline std::string to_wire(const Action& a) {
    return to_json(a).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}
inline std::string to_wire(const Observation& o) {
    return to_json(o).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}
inline std::string to_wire(const Event& e) {
    return to_json(e).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}
inline std::string message_of(const Action& a) {
    return std::visit([](const auto& x) { return detail::wire<std::decay_t<decltype(x)>>::message(x); }, a);
}
inline std::string message_of(const Observation& o) {
    return std::visit([](const auto& x) { return detail::wire<std::decay_t<decltype(x)>>::message(x); }, o);
}

inline Action action_from_json(const ordered_json& j) {
    if (!j.is_object()) detail::bad_event("an action must be a JSON object");
    auto type_it = j.find("action");
    if (type_it == j.end()) detail::bad_event("'action' key is not found in the event");
    if (!type_it->is_string()) detail::bad_event("'action' must be a string");
    const std::string type = type_it->get<std::string>();

    ordered_json args = ordered_json::object();
    if (auto it = j.find("args"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) detail::bad_event("action=" + type + " has args that are not an object");
        args = *it;
    }
    // Legacy and deprecated argument names (reference §3.6).
    std::optional<std::string> args_timestamp;
    if (auto it = args.find("timestamp"); it != args.end()) {
        if (it->is_string()) args_timestamp = it->get<std::string>();
        args.erase(it);
    }
    if (auto it = args.find("is_confirmed"); it != args.end()) {
        ordered_json v = *it;
        args.erase(it);
        if (!args.contains("confirmation_state")) args["confirmation_state"] = std::move(v);
    }
    if (auto it = args.find("images_urls"); it != args.end()) {
        ordered_json v = *it;
        args.erase(it);
        if (!args.contains("image_urls")) args["image_urls"] = std::move(v);
    }
    if (auto it = args.find("security_risk"); it != args.end()) {
        auto v = (it->is_number_integer() || it->is_number_unsigned()) ? detail::as_integer(*it) : std::nullopt;
        if (!v || *v < -1 || *v > 2) args.erase(it);
    }
    args.erase("keep_prompt");
    args.erase("task_completed");
    detail::expand_translated_ipython_code(args);

    std::optional<Action> out;
    const std::string what = "action=" + type + " has the wrong arguments";
    detail::dispatch_type<Action>(type, [&](auto tag) {
        using A = typename decltype(tag)::type;
        A a{};
        detail::read_fields(a, args, what, false);
        out = std::move(a);
    });
    if (!out) detail::bad_event("'action=" + type + "' is not defined");

    if (auto it = j.find("timeout"); it != j.end()) {
        if (!it->is_null() && !it->is_number()) detail::bad_event(what + ": timeout must be a number");
        bool blocking = false;
        if (auto b = args.find("blocking"); b != args.end() && b->is_boolean()) blocking = b->get<bool>();
        set_hard_timeout(*out, it->is_null() ? std::nullopt : std::optional<double>(it->get<double>()), blocking);
    }
    EventMeta& m = meta(*out);
    if (args_timestamp) m.timestamp = args_timestamp;
    detail::read_meta(j, m);
    return std::move(*out);
}
inline Action action_from_json(const nlohmann::json& j) { return action_from_json(ordered_json(j)); }

inline Observation observation_from_json(const ordered_json& j) {
    if (!j.is_object()) detail::bad_event("an observation must be a JSON object");
    auto type_it = j.find("observation");
    if (type_it == j.end()) detail::bad_event("'observation' key is not found in the event");
    if (!type_it->is_string()) detail::bad_event("'observation' must be a string");
    const std::string type = type_it->get<std::string>();
    const std::string what = "observation=" + type + " has the wrong extras";

    std::string content;
    if (auto it = j.find("content"); it != j.end() && !it->is_null()) {
        if (!it->is_string()) detail::bad_event(what + ": content must be a string");
        content = it->get<std::string>();
    }
    ordered_json extras = ordered_json::object();
    if (auto it = j.find("extras"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) detail::bad_event(what + ": extras must be an object");
        extras = *it;
    }
    extras.erase("formatted_output_and_error");
    const bool is_run = type == CmdOutputObservation::type;
    if (is_run) {
        // Legacy flat fields move into metadata; a missing metadata is the default one.
        CmdOutputMetadata md;
        if (auto it = extras.find("metadata"); it != extras.end() && it->is_object())
            md = cmd_output_metadata_from_json(*it);
        else if (it != extras.end() && !it->is_null())
            detail::bad_event(what + ": metadata must be an object");
        if (auto it = extras.find("exit_code"); it != extras.end()) {
            md.exit_code = detail::lenient_int(*it);
            extras.erase(it);
        }
        if (auto it = extras.find("command_id"); it != extras.end()) {
            md.pid = detail::lenient_int(*it);
            extras.erase(it);
        }
        extras["metadata"] = to_json(md);
    }
    if (type == FileEditObservation::type) extras.erase("_diff_cache");

    std::optional<Observation> out;
    detail::dispatch_type<Observation>(type, [&](auto tag) {
        using O = typename decltype(tag)::type;
        O o{};
        detail::read_fields(o, extras, what, is_run);
        o.content = std::move(content);
        if constexpr (std::is_same_v<O, CmdOutputObservation>) {
            if (!o.hidden) o.content = truncate_observation_content(std::move(o.content));
        }
        out = std::move(o);
    });
    if (!out) detail::bad_event("'observation=" + type + "' is not defined");
    detail::read_meta(j, meta(*out));
    return std::move(*out);
}
inline Observation observation_from_json(const nlohmann::json& j) { return observation_from_json(ordered_json(j)); }

inline Event event_from_json(const ordered_json& j) {
    if (j.is_object() && j.contains("action")) return Event(action_from_json(j));
    if (j.is_object() && j.contains("observation")) return Event(observation_from_json(j));
    detail::bad_event("Unknown event type");
}
inline Event event_from_json(const nlohmann::json& j) { return event_from_json(ordered_json(j)); }

namespace detail {
template <class T, class V>
struct is_alternative : std::false_type {};
template <class T, class... Ts>
struct is_alternative<T, std::variant<Ts...>> : std::bool_constant<(std::is_same_v<T, Ts> || ...)> {};
}  // namespace detail

/// One concrete action type (CmdRunAction, ...), so to_json(CmdRunAction{...}) is not ambiguous.
template <class T>
concept ActionType = detail::is_alternative<T, Action>::value;
/// One concrete observation type.
template <class T>
concept ObservationType = detail::is_alternative<T, Observation>::value;

/// to_json of one concrete action or observation type, without wrapping it in the variant first.
///@{
template <ActionType T>
ordered_json to_json(const T& a) {
    return detail::action_to_json(a);
}
template <ObservationType T>
ordered_json to_json(const T& o) {
    return detail::observation_to_json(o);
}
///@}
/// to_wire of one concrete action or observation type.
template <class T>
    requires ActionType<T> || ObservationType<T>
std::string to_wire(const T& x) {
    return to_json(x).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}
/// message_of one concrete action or observation type.
template <class T>
    requires ActionType<T> || ObservationType<T>
std::string message_of(const T& x) {
    return detail::wire<T>::message(x);
}

// ---------------------------------------------------------------------------
// nlohmann's customisation point, found by ADL: `nlohmann::json j = CmdRunAction{...};` and
// `j.get<CmdRunAction>()` (also Action, Observation, Event; json and ordered_json alike) give
// and read the same wire JSON as to_json / *_from_json above.

namespace detail {

template <class T>
concept EventJsonType = ActionType<T> || ObservationType<T> || std::is_same_v<T, Action> ||
                        std::is_same_v<T, Observation> || std::is_same_v<T, Event>;
template <class J>
concept BasicJson = nlohmann::detail::is_basic_json<J>::value;

// The one concrete type `T` out of a parsed variant; another type is a bad response, as any
// other mismatch between the JSON and what the caller expects.
template <class T, class Variant>
T take_alternative(Variant&& parsed, const char* key) {
    if (auto* p = std::get_if<T>(&parsed)) return std::move(*p);
    const std::string got = std::visit([](const auto& x) { return std::string(x.type); }, parsed);
    throw error(errc::bad_response,
                std::string("expected ") + key + "=" + std::string(T::type) + ", the JSON has " + key + "=" + got);
}

}  // namespace detail

/// nlohmann's to_json hook: `j = x` stores the OpenHands wire JSON of `x` (keys in wire order
/// when `j` is an ordered_json).
template <detail::BasicJson J, detail::EventJsonType T>
void to_json(J& j, const T& x) {
    j = J(to_json(x));
}

/// nlohmann's from_json hook: `j.get<T>()` parses as action_from_json / observation_from_json /
/// event_from_json do; a concrete type that does not match the JSON's `action` / `observation`
/// is runbox::error errc::bad_response.
template <detail::BasicJson J, detail::EventJsonType T>
void from_json(const J& j, T& out) {
    const ordered_json ordered(j);
    if constexpr (std::is_same_v<T, Action>) {
        out = action_from_json(ordered);
    } else if constexpr (std::is_same_v<T, Observation>) {
        out = observation_from_json(ordered);
    } else if constexpr (std::is_same_v<T, Event>) {
        out = event_from_json(ordered);
    } else if constexpr (ActionType<T>) {
        out = detail::take_alternative<T>(action_from_json(ordered), "action");
    } else {
        out = detail::take_alternative<T>(observation_from_json(ordered), "observation");
    }
}

}  // namespace runbox
