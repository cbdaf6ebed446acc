/// \file
/// the IPython/REPL driver of run_ipython: one persistent Python interpreter under its
/// supervisor (server/process.hpp), driven over a socket one JSON line per cell.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runbox/detail/linkage.hpp"
#include "runbox/server/process.hpp"
#include "runbox/server/run_as.hpp"

namespace runbox::server::detail {

// The Python side of run_ipython: one persistent interpreter reading one JSON request per
// line on stdin ({"code", "cwd"}) and answering one JSON line on stdout ({"output"}). During a
// cell, fds 1 and 2 point at a temp file so output of child processes is captured as well, and
// fd 0 is /dev/null so input() cannot eat the protocol. The last expression's repr is printed
// like a notebook; `!cmd`, `%pip ...` and `%cd` lines are rewritten to plain Python.
inline constexpr std::string_view python_driver_source = R"PY(
import ast, json, linecache, os, shlex, subprocess, sys, tempfile, traceback
_rb_requests = os.fdopen(os.dup(0), 'r', encoding='utf-8', errors='replace')
_rb_replies = os.fdopen(os.dup(1), 'w', encoding='utf-8')
_rb_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_rb_null, 0)
os.close(_rb_null)
_rb_ns = {'__name__': '__main__', '__builtins__': __builtins__}
_rb_cells = [0]

def _rb_shell(command):
    sys.stdout.flush()
    sys.stderr.flush()
    subprocess.run(command, shell=True)

def _rb_transform(code):
    out = []
    for line in code.split('\n'):
        body = line.lstrip()
        indent = line[:len(line) - len(body)]
        if body.startswith('!'):
            line = indent + '_rb_shell(' + repr(body[1:]) + ')'
        elif body == '%pip' or body.startswith('%pip '):
            line = indent + '_rb_shell(' + repr(shlex.quote(sys.executable) + ' -m pip ' + body[4:].strip()) + ')'
        elif body.startswith('%cd '):
            line = indent + '__import__("os").chdir(' + repr(os.path.expanduser(body[4:].strip())) + ')'
        out.append(line)
    return '\n'.join(out)

def _rb_run(code, name):
    source = _rb_transform(code)
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    tree = ast.parse(source, name, 'exec')
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, name, 'exec'), _rb_ns)
    if last is not None:
        value = eval(compile(last, name, 'eval'), _rb_ns)
        if value is not None:
            print(repr(value))

def _rb_report(error, name):
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != name:
        tb = tb.tb_next
    if isinstance(error, SyntaxError) or tb is None:
        sys.stderr.write(''.join(traceback.format_exception_only(type(error), error)))
    else:
        traceback.print_exception(type(error), error, tb)

_rb_ns['_rb_shell'] = _rb_shell
_rb_replies.write(json.dumps({'executable': sys.executable}) + '\n')
_rb_replies.flush()
while True:
    try:
        _rb_line = _rb_requests.readline()
        if not _rb_line:
            break
        _rb_request = json.loads(_rb_line)
        _rb_cells[0] += 1
        _rb_name = '<cell-%d>' % _rb_cells[0]
        _rb_capture = tempfile.TemporaryFile()
        _rb_saved = (os.dup(1), os.dup(2))
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(_rb_capture.fileno(), 1)
            os.dup2(_rb_capture.fileno(), 2)
            try:
                if _rb_request.get('cwd'):
                    os.chdir(_rb_request['cwd'])
                _rb_run(_rb_request['code'], _rb_name)
            except BaseException as _rb_error:
                _rb_report(_rb_error, _rb_name)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:
                pass
            os.dup2(_rb_saved[0], 1)
            os.dup2(_rb_saved[1], 2)
            os.close(_rb_saved[0])
            os.close(_rb_saved[1])
        _rb_capture.seek(0)
        _rb_output = _rb_capture.read().decode('utf-8', 'replace')
        _rb_capture.close()
        _rb_replies.write(json.dumps({'output': _rb_output}) + '\n')
        _rb_replies.flush()
    except KeyboardInterrupt:
        _rb_replies.write(json.dumps({'output': '', 'interrupted': True}) + '\n')
        _rb_replies.flush()
)PY";

/// A persistent Python interpreter for run_ipython (the reference uses a Jupyter kernel).
class PythonRepl {
public:
    /// What one cell produced.
    struct Result {
        std::string output;
        bool timed_out = false;
        bool died = false;
    };

    /// Nothing starts yet: the interpreter `python` starts at the first cell (or ensure_started()),
    /// in `working_dir`, with `envp` ("K=V") and, when set, as `user`.
    PythonRepl(std::string python, std::string working_dir, std::vector<std::string> envp, std::optional<RunAs> user)
        : python_(std::move(python)), working_dir_(std::move(working_dir)), envp_(std::move(envp)), user_(std::move(user)) {}
    PythonRepl(const PythonRepl&) = delete;
    PythonRepl& operator=(const PythonRepl&) = delete;
    /// kill() and reap().
    ~PythonRepl() {
        kill();
        reap();
    }

    /// sys.executable of the interpreter (after the first successful start).
    const std::string& executable() const noexcept { return executable_; }

    /// Counts interpreter starts: a change means the namespace is new.
    std::uint64_t generation() const noexcept { return generation_; }

    /// Starts the interpreter now if it is not running (run_cell would do it anyway).
    void ensure_started() {
        if (!running()) start();
    }

    /// Runs one cell. `cwd` (if set) is chdir'd to first. Not thread-safe (the server's
    /// action mutex serialises calls); kill() may be called concurrently.
    Result run_cell(const std::string& code, const std::optional<std::string>& cwd, std::optional<double> timeout_s);

    /// Shuts the interpreter down for good: kills it and everything it started (its
    /// supervisor, server/process.hpp), and no cell starts a new one afterwards. Safe from any
    /// thread (the server's stop()).
    void kill() noexcept {
        closed_ = true;
        kill_all();
    }

    /// Closes the pipe and reaps the interpreter (after kill()).
    void reap() noexcept;

private:
    bool running();
    Result died() {
        reap();
        return Result{{}, false, true};
    }
    void kill_all() noexcept;
    void start();
    void signal_group(int sig) noexcept;
    bool send_line(const std::string& line);
    /// One reply line, or nullopt on deadline/EOF (eof_ tells which).
    std::optional<std::string> read_line(std::optional<std::chrono::steady_clock::time_point> deadline);

    std::string python_;
    std::string working_dir_;
    std::vector<std::string> envp_;
    std::optional<RunAs> user_;
    std::string executable_;
    std::uint64_t generation_ = 0;
    std::mutex mutex_;  // guards proc_/fd_ against kill() from another thread
    std::atomic<bool> closed_{false};
    std::unique_ptr<Contained> proc_;
    int fd_ = -1;
    bool eof_ = false;
    std::string buffer_;
};

}  // namespace runbox::server::detail

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/server/impl/ipython_driver.ipp"
#endif
