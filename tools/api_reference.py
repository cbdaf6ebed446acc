#!/usr/bin/env python3
"""Builds the API reference and fails when anything public is undocumented.

Runs doxygen on the given Doxyfile (docs/Doxyfile: WARN_AS_ERROR = FAIL_ON_WARNINGS, so every
undocumented type, function or member fails it), then reads the XML it wrote and also fails on
an undocumented enumerator, which Doxygen 1.9.4 (Debian 12's) does not warn about. Prints one
line per problem, compiler style, and a count per file."""
import argparse
import collections
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET


def documented(element):
    return any("".join(element.find(tag).itertext()).strip()
               for tag in ("briefdescription", "detaileddescription") if element.find(tag) is not None)


def undocumented_enumerators(xml_dir):
    found = set()
    for path in sorted(xml_dir.glob("*.xml")):
        if path.name == "index.xml":
            continue
        for enum in ET.parse(path).iter("memberdef"):
            if enum.get("kind") != "enum":
                continue
            location = enum.find("location")
            for value in enum.findall("enumvalue"):
                if not documented(value):
                    found.add((location.get("file"), int(location.get("line", "0")),
                               f"{enum.findtext('qualifiedname') or enum.findtext('name')}::{value.findtext('name')}"))
    return sorted(found)


def source_path(source_dir, stripped):
    """The XML's file names lost docs/Doxyfile's STRIP_FROM_PATH prefix; put it back."""
    for prefix in ("include", "."):
        candidate = pathlib.Path(source_dir).resolve() / prefix / stripped
        if candidate.exists():
            return str(candidate)
    return stripped


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--doxygen", required=True)
    parser.add_argument("--doxyfile", required=True)
    parser.add_argument("--xml", required=True, help="the XML_OUTPUT directory the Doxyfile writes")
    parser.add_argument("--source-dir", required=True, help="where doxygen runs (docs/Doxyfile's paths are relative)")
    args = parser.parse_args()

    xml_dir = pathlib.Path(args.xml)
    for stale in xml_dir.glob("*.xml"):
        stale.unlink()
    doxygen = subprocess.run([args.doxygen, args.doxyfile], cwd=args.source_dir, stderr=subprocess.PIPE, text=True)
    # Doxygen repeats some warnings (once per output format); each is listed once.
    warnings = list(dict.fromkeys(line for line in doxygen.stderr.splitlines() if line.strip()))
    for line in warnings:
        print(line)
    enumerators = [(source_path(args.source_dir, file), line, name)
                   for file, line, name in undocumented_enumerators(xml_dir)]
    for file, line, name in enumerators:
        print(f"{file}:{line}: error: enumerator {name} is not documented")

    per_file = collections.Counter()
    for line in warnings:
        if ": error: " in line or ": warning: " in line:
            per_file[line.split(":", 1)[0]] += 1
    for file, _, _ in enumerators:
        per_file[file] += 1
    if doxygen.returncode != 0 or enumerators:
        for file, count in sorted(per_file.items()):
            print(f"api_reference: {count} in {file}")
        print(f"api_reference: FAILED: doxygen exited {doxygen.returncode}, "
              f"{len(enumerators)} undocumented enumerator(s)")
        return 1
    print("api_reference: every public entity is documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
