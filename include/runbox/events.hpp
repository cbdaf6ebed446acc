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


#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"


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
RUNBOX_DECL std::string_view action_type(const Action& a) noexcept;
/// The wire `observation` value of the alternative held (`"run"`, `"error"`, ...).
RUNBOX_DECL std::string_view observation_type(const Observation& o) noexcept;
/// Runnable actions are the ones a Runtime executes (run, run_ipython, read, write, edit, browse*, MCP).
RUNBOX_DECL bool is_runnable(const Action& a) noexcept;

/// The EventMeta of whatever alternative is held (a reference into the event).
///@{
RUNBOX_DECL EventMeta& meta(Action& a) noexcept;
RUNBOX_DECL const EventMeta& meta(const Action& a) noexcept;
RUNBOX_DECL EventMeta& meta(Observation& o) noexcept;
RUNBOX_DECL const EventMeta& meta(const Observation& o) noexcept;
RUNBOX_DECL EventMeta& meta(Event& e) noexcept;
RUNBOX_DECL const EventMeta& meta(const Event& e) noexcept;
///@}

/// The action's hard timeout in seconds (unset: none).
RUNBOX_DECL std::optional<double> timeout_of(const Action& a) noexcept;
/// Sets an action's hard timeout; for `run` also sets blocking (default true, as in the reference).
RUNBOX_DECL void set_hard_timeout(Action& a, std::optional<double> seconds, bool blocking = true);


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

/// Output longer than `max_chars` code points keeps its first and last max_chars/2
/// code points around the truncation notice (never splits a code point).
RUNBOX_DECL std::string truncate_observation_content(std::string content,
                                                     std::size_t max_chars = max_cmd_output_chars);

/// Builds a command observation the way the reference constructor does (truncates unless hidden).
RUNBOX_DECL CmdOutputObservation make_cmd_output(std::string content, std::string command,
                                                 CmdOutputMetadata metadata, bool hidden = false);

/// The agent-facing text: prefix + content + suffix + working dir / interpreter / exit code lines.
RUNBOX_DECL std::string to_agent_text(const CmdOutputObservation& obs);


// ---------------------------------------------------------------------------
// Serialisation API (definitions in impl/events.ipp)

/// The `metadata` object of a command observation's extras (all eight keys, in wire order).
RUNBOX_DECL ordered_json to_json(const CmdOutputMetadata& m);
/// Lenient: numbers given as strings are parsed float->int (failure -> -1); unknown keys ignored.
///@{
RUNBOX_DECL CmdOutputMetadata cmd_output_metadata_from_json(const ordered_json& j);
RUNBOX_DECL CmdOutputMetadata cmd_output_metadata_from_json(const nlohmann::json& j);
///@}

/// The OpenHands JSON of an event, keys in the wire order (see the top of this header).
///@{
RUNBOX_DECL ordered_json to_json(const Action& a);
RUNBOX_DECL ordered_json to_json(const Observation& o);
RUNBOX_DECL ordered_json to_json(const Event& e);
///@}
/// Compact dump in wire order; invalid UTF-8 is replaced (U+FFFD) instead of throwing.
///@{
RUNBOX_DECL std::string to_wire(const Action& a);
RUNBOX_DECL std::string to_wire(const Observation& o);
RUNBOX_DECL std::string to_wire(const Event& e);
///@}
/// The per-type `message` text.
///@{
RUNBOX_DECL std::string message_of(const Action& a);
RUNBOX_DECL std::string message_of(const Observation& o);
///@}

/// Parses an OpenHands action (legacy argument names accepted, reference §3.6).
/// Throws runbox::error errc::bad_response naming the problem: not an object, no or unknown
/// `action`, a missing required or unexpected argument, a field of the wrong JSON type.
///@{
RUNBOX_DECL Action action_from_json(const ordered_json& j);
RUNBOX_DECL Action action_from_json(const nlohmann::json& j);
///@}
/// Parses an OpenHands observation (legacy flat `exit_code` / `command_id` accepted); a command's
/// `content` is truncated to max_cmd_output_chars unless hidden. Throws runbox::error
/// errc::bad_response as action_from_json does (unknown extras of `run` are tolerated).
///@{
RUNBOX_DECL Observation observation_from_json(const ordered_json& j);
RUNBOX_DECL Observation observation_from_json(const nlohmann::json& j);
///@}
/// An action if `j` has an `action` key, an observation if it has `observation`;
/// otherwise, or when the event is invalid, throws runbox::error errc::bad_response.
///@{
RUNBOX_DECL Event event_from_json(const ordered_json& j);
RUNBOX_DECL Event event_from_json(const nlohmann::json& j);
///@}
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

namespace detail {
/// The wire codec of one concrete action or observation type: defined in impl/events.ipp and,
/// in compiled mode, explicitly instantiated for every alternative by runbox/src.hpp (so a
/// user's unit instantiates none of the field tables).
template <class T>
struct event_codec {
    /// The OpenHands JSON of `x` (as to_json of the variant gives it).
    static ordered_json to_json(const T& x);
    /// The per-type `message` text of `x`.
    static std::string message(const T& x);
};
}  // namespace detail

/// to_json of one concrete action or observation type, without wrapping it in the variant first.
///@{
template <ActionType T>
ordered_json to_json(const T& a) {
    return detail::event_codec<T>::to_json(a);
}
template <ObservationType T>
ordered_json to_json(const T& o) {
    return detail::event_codec<T>::to_json(o);
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
    return detail::event_codec<T>::message(x);
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
    std::string got;
    if constexpr (std::is_same_v<std::decay_t<Variant>, Action>) got = action_type(parsed);
    else got = observation_type(parsed);
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

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/impl/events.ipp"
#endif
