#!/usr/bin/env python3
"""Writes the fuzz seeds too big to commit: deep nesting and huge inputs, one directory per harness.

    gen_seeds.py OUTDIR      ->  OUTDIR/<harness>/<seed>

Existing files are kept (the gzip bomb takes a few seconds to compress). Each seed is named after
the row of issue 10 it reproduces where there is one.
"""
import json
import os
import sys
import zlib

MB = 1 << 20


def write(outdir, harness, name, data):
    path = os.path.join(outdir, harness, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        return
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        if isinstance(data, (bytes, bytearray)):
            f.write(data)
        else:  # an iterable of chunks
            for chunk in data:
                f.write(chunk)
    os.replace(tmp, path)


def action_body(action):
    return json.dumps({"action": action}).encode()


def run_action(**extra):
    action = {"action": "run", "args": {"command": "echo hi", "blocking": False}, "timeout": 30}
    action.update(extra)
    return action


def gzip_of_zeros(total, chunk=8 * MB):
    """A gzip stream of `total` zero bytes (about 1/1000 of its size), compressed in chunks."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(chunk)
    out = bytearray()
    for _ in range(total // chunk):
        out += z.compress(zeros)
    out += z.flush()
    return bytes(out)


def http_request(method, target, headers, body=b""):
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for k, v in headers:
        head += f"{k}: {v}\r\n"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def event_decoder(out):
    h = "event_decoder"
    # Row 1: tool_call_metadata nesting 50 000 arrays (~100 KB).
    deep = "[" * 50000 + "]" * 50000
    write(out, h, "row1_deep_tool_call_metadata_arrays",
          b'{"action": {"action": "run", "args": {"command": "echo hi"}, "tool_call_metadata": ' + deep.encode() + b"}}")
    write(out, h, "deep_args_objects",
          b'{"action": {"action": "run", "args": {"command": "echo hi", "x": ' + b'{"a":' * 50000 + b"1" + b"}" * 50000 + b"}}}")
    write(out, h, "deep_observation_extras",
          b'{"observation": "run", "content": "hi", "extras": {"metadata": ' + b"[" * 50000 + b"]" * 50000 + b"}}")
    # Row 2 reaches the literal reader through the decoder: 35 000 nested `[`.
    code = "print(file_editor(**{'command': 'view', 'path': '/tmp', 'x': " + "[" * 35000 + "]" * 35000 + "}))"
    write(out, h, "row2_deep_translated_ipython_code",
          action_body({"action": "edit", "args": {"path": "/tmp/x", "translated_ipython_code": code}}))
    write(out, h, "huge_command_4mb", action_body(run_action(args={"command": "echo " + "a" * (4 * MB)})))
    write(out, h, "huge_array_of_ints", b'{"action": {"action": "run", "args": {"command": "x"}, "tool_call_metadata": ['
          + b"1," * (1 * MB) + b"1]}}")


def python_literal(out):
    h = "python_literal"
    write(out, h, "row2_deep_brackets_100000", b"[" * 100000)
    write(out, h, "deep_brackets_closed_35000", b"[" * 35000 + b"]" * 35000)
    write(out, h, "deep_parens_100000", b"(" * 100000)
    write(out, h, "deep_dicts_50000", b"{'a': " * 50000 + b"1" + b"}" * 50000)
    write(out, h, "huge_string_4mb", b"{'command': 'create', 'path': '/tmp/x', 'file_text': '" + b"a" * (4 * MB) + b"'}")
    write(out, h, "huge_list_1m_items", b"[" + b"1, " * (1 * MB) + b"1]")


def bash_parse(out):
    h = "bash_parse"
    write(out, h, "deep_command_substitution_100000", b"echo " + b"$(" * 100000 + b")" * 100000)
    write(out, h, "deep_subshells_100000", b"(" * 100000 + b"true" + b")" * 100000)
    write(out, h, "deep_braces_50000", b"{ " * 50000 + b"true; " + b"}; " * 50000)
    write(out, h, "deep_backticks_20000", b"echo " + b"`" * 20000)
    write(out, h, "huge_heredoc_4mb", b"cat <<'EOF'\n" + b"line\n" * (800 * 1024) + b"EOF\necho done\n")
    write(out, h, "many_commands_200000", b"echo a\n" * 200000)
    write(out, h, "many_escapes_1mb", b"find . -exec echo {} \\; " * 40000)
    # Output shaped like row 9's: 48 000 marker-like lines, with and without end markers.
    write(out, h, "marker_like_lines_48000", b"###PS1JSON###\n{\"pid\": 1}\n" * 48000)
    write(out, h, "marker_blocks_48000", b"###PS1JSON###\n{\"pid\": 1, \"exit_code\": 0}\n###PS1END###\n" * 48000)
    write(out, h, "marker_starts_then_end_48000", b"###PS1JSON###\n" * 48000 + b"{}\n###PS1END###\n")
    write(out, h, "huge_escape_sequences", b"\x1b[31m" * 200000 + b"\r" * 100000 + b"\x1b]0;title\x07" * 50000)


def http_request_seeds(out):
    h = "http_request"
    # Row 5: no key, a 1 MB gzip body that inflates to 1 GB.
    write(out, h, "row5_gzip_bomb_1gb_no_key",
          http_request("POST", "/execute_action", [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                       gzip_of_zeros(1024 * MB)))
    # Row 5: no key, a plain 64 MB body (the issue used 200 MB; 64 MB shows the same read-before-403).
    write(out, h, "row5_plain_body_64mb_no_key",
          http_request("POST", "/execute_action", [("Content-Type", "application/json")], b" " * (64 * MB)))
    boundary = "fuzzboundary"
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + b"x" * (32 * MB) + f"\r\n--{boundary}--\r\n".encode()
    write(out, h, "row5_multipart_32mb_no_key",
          http_request("POST", "/upload_file?destination=/tmp", [("Content-Type", f"multipart/form-data; boundary={boundary}")], part))
    chunks = b"1\r\na\r\n" * 200000 + b"0\r\n\r\n"
    write(out, h, "chunked_200000_chunks_no_key",
          b"POST /execute_action HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    write(out, h, "many_headers_20000",
          b"GET /alive HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-A: b\r\n" * 20000 + b"\r\n")
    write(out, h, "huge_header_line_1mb", b"GET /alive HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: " + b"b" * MB + b"\r\n\r\n")
    write(out, h, "huge_target_1mb", b"GET /" + b"a" * MB + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    write(out, h, "pipelined_5000_alive", b"GET /alive HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 5000)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    event_decoder(out)
    python_literal(out)
    bash_parse(out)
    http_request_seeds(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
