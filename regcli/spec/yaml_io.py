"""Safe YAML for specs: YAML 1.2 numbers and booleans, size and alias caps, and a dumper that round-trips.

A spec is a few hundred bytes and ~200 YAML nodes; each cap below is 10x (nesting, list
length) to 3000x (bytes) above a real spec, so that a hostile or mistyped file (a "billion
laughs" of 10**9 nodes, /dev/zero, a list of 10**6 items) is refused in milliseconds, naming
its line or key. `load_yaml_text` and `load_yaml_file` turn every YAML failure into one
`SpecError`. PyYAML only: `regcli --help` and `regcli validate` must start instantly.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from regcli.errors import SpecError

# --------------------------------------------------------------------------------------
# Caps on a spec file and the YAML in it, checked while reading and composing.
# --------------------------------------------------------------------------------------
MAX_SPEC_BYTES = 1_000_000  # a spec is a few hundred bytes; a megabyte is not a spec
MAX_ALIASES = 100  # real specs use a handful of YAML aliases (*name); bombs use thousands
MAX_EXPANDED_NODES = 100_000  # a spec expands to ~200 YAML nodes; "billion laughs" to 10**9
MAX_ENTRIES = 10_000  # entries of one YAML list or mapping; the longest real one is a sweep's 1,000 seeds
MAX_NESTING = 64  # the deepest real spec (model.layers.N.kernel_regularizer.l2) is 5 levels
MAX_INT_DIGITS = 100  # Python refuses to parse ints above 4300 digits; no setting needs 20

_TAG = "tag:yaml.org,2002:"
_INT_RE = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
# YAML 1.2 floats: a dot or an exponent is required (`1e-4`, `1.`, `.5e1`, `-3E2`), plus
# .inf/.nan so that validation can name them instead of reading them as strings.
_FLOAT_RE = re.compile(
    r"""[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[0-9][0-9_]*[eE][-+]?[0-9]+
    |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?)
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN)""",
    re.X,
)
_BOOL_RE = re.compile(r"true|True|TRUE|false|False|FALSE")


class _RejectedYaml(yaml.MarkedYAMLError):
    """Well-formed YAML that regcli refuses (duplicate key, python tag, alias bomb, ...)."""


class SpecLoader(yaml.SafeLoader):
    """A `yaml.SafeLoader` for specs: YAML 1.2 numbers and booleans, no surprises.

    Differences from `yaml.SafeLoader`: `1e-4` is a float (PyYAML reads it as a string);
    only true/false are booleans (`no` stays the string "no"); `010` stays a string
    instead of becoming octal 8; dates stay strings; a key repeated in one mapping is an
    error; only plain mappings, lists, strings, numbers, booleans and null are built; more
    than `MAX_ALIASES` aliases or more than `MAX_EXPANDED_NODES` nodes after expanding
    aliases is an error (billion laughs).
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._alias_count = 0
        self._path: list[str] = []  # dotted key of the node being composed, for messages

    def compose_node(self, parent: Any, index: Any) -> Any:
        label = None
        if isinstance(parent, yaml.SequenceNode):
            label = str(index)
            self._check_entries(parent, index, "entries")
        elif isinstance(parent, yaml.MappingNode):
            if index is None:  # composing a key
                self._check_entries(parent, len(parent.value), "keys")
            else:
                label = str(index.value) if isinstance(index, yaml.ScalarNode) else "<key>"
        if label is None:
            return self._compose_node(parent, index)
        self._path.append(label)
        try:
            return self._compose_node(parent, index)
        finally:
            self._path.pop()

    def _check_entries(self, parent: Any, count: int, what: str) -> None:
        """A list or mapping written out with more than MAX_ENTRIES entries, named by its key."""
        if count >= MAX_ENTRIES:
            kind = "list" if what == "entries" else "mapping"
            name = ".".join(self._path)[:200] or f"the top-level {kind}"
            raise _RejectedYaml(
                problem=f"{name} has more than {MAX_ENTRIES:,} {what}; at most {MAX_ENTRIES:,} are allowed "
                f"in one {kind} of a spec",
                problem_mark=parent.start_mark,
            )

    def _compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._alias_count += 1
            if self._alias_count > MAX_ALIASES:
                raise _RejectedYaml(
                    problem=f"more than {MAX_ALIASES} aliases (*name); regcli refuses documents "
                    "built from that many references (a 'billion laughs' guard). Write the values out",
                    problem_mark=self.peek_event().start_mark,
                )
        return super().compose_node(parent, index)

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _TAG + "merge":
                continue
            key = _canonical_key(key_node)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise _RejectedYaml(
                    problem=f"duplicate key '{key_node.value}' in mapping (first given at line {first}); "
                    "PyYAML would silently keep the last one. Keep only one",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node
        return node

    def compose_document(self) -> Any:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_undefined(self, node: Any) -> Any:
        tag = str(node.tag).replace(_TAG, "!!")
        raise _RejectedYaml(
            problem=f"the tag '{tag}' is not allowed: regcli reads specs with a safe loader that "
            "builds only mappings, lists, strings, numbers, booleans and null. Remove the tag",
            problem_mark=node.start_mark,
        )

    def construct_strict_int(self, node: Any) -> int:
        value = self.construct_scalar(node)
        digits = value.replace("_", "").lstrip("+-")
        if not _INT_RE.fullmatch(value) or len(digits) > MAX_INT_DIGITS:
            raise _RejectedYaml(
                problem=f"'{value[:40]}' is not a decimal integer", problem_mark=node.start_mark
            )
        return int(value.replace("_", ""))

    def construct_strict_float(self, node: Any) -> float:
        value = self.construct_scalar(node)
        if _INT_RE.fullmatch(value) and len(value) <= MAX_INT_DIGITS:
            return float(int(value.replace("_", "")))
        if not _FLOAT_RE.fullmatch(value):
            raise _RejectedYaml(problem=f"'{value[:40]}' is not a number", problem_mark=node.start_mark)
        return float(self.construct_yaml_float(node))

    def construct_strict_bool(self, node: Any) -> bool:
        value = self.construct_scalar(node)
        if not _BOOL_RE.fullmatch(value):
            raise _RejectedYaml(problem=f"'{value[:40]}' is not true or false", problem_mark=node.start_mark)
        return value.lower() == "true"


def _canonical_key(node: yaml.ScalarNode) -> Any:
    """The value a scalar key stands for, so that `1`/`+1` or `true`/`True` count as one key."""
    if node.tag == _TAG + "bool":
        return (node.tag, node.value.lower())
    if node.tag == _TAG + "null":
        return (node.tag, None)
    if node.tag in (_TAG + "int", _TAG + "float") and len(node.value) <= MAX_INT_DIGITS:
        try:
            return ("number", float(node.value.replace("_", "")))
        except ValueError:  # .inf/.nan spelled differently, or an explicitly tagged junk value
            pass
    return (node.tag, node.value)


def _check_expansion(root: Any) -> None:
    """Refuse alias cycles, nesting deeper than MAX_NESTING and alias bombs.

    Only values that aliases add (expanded values beyond the nodes actually written) count
    towards the 'billion laughs' bound `MAX_EXPANDED_NODES`; a long list written out is
    refused earlier, naming its key (`SpecLoader.compose_node`).
    """
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded node count, height)
    on_path: set[int] = set()

    def visit(node: Any, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in done:
            size, height = done[key]
        else:
            if key in on_path:
                raise _RejectedYaml(
                    problem="an alias refers to a node that contains it", problem_mark=node.start_mark
                )
            if depth > MAX_NESTING:
                raise _RejectedYaml(
                    problem=f"nested more than {MAX_NESTING} levels deep", problem_mark=node.start_mark
                )
            on_path.add(key)
            if isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [item for pair in node.value for item in pair]
            else:
                children = []
            size, height = 1, 0
            for child in children:
                child_size, child_height = visit(child, depth + 1)
                size += child_size
                height = max(height, child_height + 1)
                # Values beyond every node written so far can only come from aliases.
                if size > MAX_EXPANDED_NODES + len(done) + len(on_path):
                    raise _RejectedYaml(
                        problem=f"the document expands to more than {MAX_EXPANDED_NODES:,} values "
                        "through aliases (a 'billion laughs' document); regcli refuses it",
                        problem_mark=node.start_mark,
                    )
            on_path.discard(key)
            done[key] = (size, height)
        if depth + height > MAX_NESTING:
            raise _RejectedYaml(
                problem=f"nested more than {MAX_NESTING} levels deep", problem_mark=node.start_mark
            )
        return size, height

    if root is not None:
        visit(root, 0)


def _install_resolvers(cls: Any, base: Mapping[str, list[Any]]) -> None:
    """Give `cls` the implicit resolvers in `base` plus regcli's YAML 1.2 bool/int/float."""
    cls.yaml_implicit_resolvers = {first: list(pairs) for first, pairs in base.items()}
    cls.add_implicit_resolver(_TAG + "bool", re.compile(f"^(?:{_BOOL_RE.pattern})$"), list("tTfF"))
    cls.add_implicit_resolver(_TAG + "int", re.compile(f"^(?:{_INT_RE.pattern})$"), list("-+0123456789"))
    cls.add_implicit_resolver(
        _TAG + "float", re.compile(f"^(?:{_FLOAT_RE.pattern})$", re.X), list("-+0123456789.")
    )


# Of YAML 1.1's implicit types keep only null and merge (<<); bool, int and float are the
# YAML 1.2 ones above. Dropped: yes/no/on/off, octal and sexagesimal ints, timestamps, `=`.
_install_resolvers(
    SpecLoader,
    {
        first: kept
        for first, pairs in yaml.SafeLoader.yaml_implicit_resolvers.items()
        if (kept := [(tag, rx) for tag, rx in pairs if tag in (_TAG + "null", _TAG + "merge")])
    },
)
SpecLoader.yaml_constructors = {
    tag: fn
    for tag, fn in yaml.SafeLoader.yaml_constructors.items()
    if tag in (_TAG + "null", _TAG + "str", _TAG + "seq", _TAG + "map")
}
SpecLoader.add_constructor(_TAG + "int", SpecLoader.construct_strict_int)
SpecLoader.add_constructor(_TAG + "float", SpecLoader.construct_strict_float)
SpecLoader.add_constructor(_TAG + "bool", SpecLoader.construct_strict_bool)
SpecLoader.add_constructor(None, SpecLoader.construct_undefined)


class SpecDumper(yaml.SafeDumper):
    """Dumps specs so that both `SpecLoader` and plain YAML 1.1 tools read them back the same.

    A string is quoted when either resolver would read it as something else: "1e5" (a
    float to `SpecLoader`) and "no" (a boolean to YAML 1.1) both come out quoted.
    """


_install_resolvers(SpecDumper, yaml.SafeDumper.yaml_implicit_resolvers)
# Lists of scalars on one line (`hidden: [256, 128]`), mappings as indented blocks.
SpecDumper.add_representer(
    list,
    lambda dumper, data: dumper.represent_sequence(
        _TAG + "seq", data, flow_style=not any(isinstance(item, list | dict) for item in data)
    ),
)
SpecDumper.add_representer(
    dict, lambda dumper, data: dumper.represent_mapping(_TAG + "map", data, flow_style=False)
)


class YamlFailure(Exception):
    """Why a text is not acceptable YAML, and where (1-based line and column, or None)."""

    def __init__(self, problem: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(problem)
        self.problem, self.line, self.column = problem, line, column


def parse_yaml(text: str) -> Any:
    """Parse `text` with `SpecLoader`; every failure becomes `YamlFailure`."""
    try:
        return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - SpecLoader is a SafeLoader
    except _RejectedYaml as exc:
        mark = exc.problem_mark
        raise YamlFailure(f"{exc.problem}.", mark.line + 1, mark.column + 1) from None
    except yaml.MarkedYAMLError as exc:
        problem = f"malformed YAML: {exc.problem}"
        if exc.context:
            cm = exc.context_mark
            problem += f" ({exc.context}" + (
                f" at line {cm.line + 1}, column {cm.column + 1})" if cm else ")"
            )
        mark = exc.problem_mark or exc.context_mark
        if mark is None:
            raise YamlFailure(problem + ".") from None
        raise YamlFailure(problem + ".", mark.line + 1, mark.column + 1) from None
    except yaml.reader.ReaderError as exc:
        raise YamlFailure(
            f"contains the character #x{exc.character:04x}, which YAML does not allow "
            f"(at character {exc.position})."
        ) from None
    except yaml.YAMLError as exc:
        raise YamlFailure(f"malformed YAML: {exc}.") from None
    except RecursionError:
        raise YamlFailure(f"nested too deeply (more than {MAX_NESTING} levels).") from None


def load_yaml_text(text: str, source: str = "<string>") -> Any:
    """Parse YAML text with regcli's safe loader.

    Args:
        text: the YAML document.
        source: what to call the text in error messages (a file name). Defaults to `"<string>"`.

    Returns:
        The plain value (dict, list, str, int, float, bool or None; None for an empty text).

    Raises:
        SpecError: malformed YAML, or YAML that regcli refuses, with `source:line:col`.
    """
    try:
        return parse_yaml(text)
    except YamlFailure as exc:
        where = source if exc.line is None else f"{source}:{exc.line}:{exc.column}"
        raise SpecError(f"Invalid YAML in {where}: {exc.problem}") from None


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    """Read a spec file (experiment or sweep) and return its top-level mapping.

    Raises:
        SpecError: the file is missing, a directory, not a regular file (a device, FIFO or
            socket), unreadable, not UTF-8, over `MAX_SPEC_BYTES`, malformed, empty, or its
            top level is not a mapping.
    """
    p = Path(path)
    if not p.exists():
        raise SpecError(f"Spec file {p} does not exist (looked for {p.absolute()}). Check the path.")
    if p.is_dir():
        raise SpecError(
            f"Spec file {p} is a directory; expected a YAML file such as configs/breast_cancer.yaml."
        )
    try:
        text = _read_capped(p).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"Spec file {p} is not UTF-8 text (byte {exc.start}). Save it as UTF-8.") from None
    except OSError as exc:
        raise SpecError(f"Cannot read spec file {p}: {exc.strerror or exc}.") from None
    data = load_yaml_text(text, source=str(p))
    if data is None:
        raise SpecError(
            f"Spec file {p} is empty; expected a mapping with at least data:, e.g. "
            "'data: {source: breast_cancer}'."
        )
    if not isinstance(data, dict):
        raise SpecError(
            f"Spec file {p} must be a YAML mapping of keys such as data:, model:, training:; "
            f"its top level is {kind_of(data)}."
        )
    return data


def _read_capped(p: Path) -> bytes:
    """The bytes of regular file `p`, at most `MAX_SPEC_BYTES`; never trusts `st_size`.

    Opened non-blocking so that a FIFO without a writer cannot hang the open; devices,
    FIFOs and sockets are refused before anything is read, and a file that reports size 0
    (/proc) is still read only up to the cap.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(p, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SpecError(
                f"Spec file {p} is {_file_kind(mode)}, not a regular file; expected a YAML file such as "
                "configs/breast_cancer.yaml. regcli does not read specs from devices, pipes or sockets."
            )
        chunks, size = [], 0
        while size <= MAX_SPEC_BYTES and (chunk := os.read(fd, MAX_SPEC_BYTES + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            f"Spec file {p} is over {MAX_SPEC_BYTES:,} bytes; a spec is a short YAML file "
            f"(regcli refuses more than {MAX_SPEC_BYTES:,} bytes)."
        )
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    """'a character device', 'a named pipe (FIFO)', ... for messages."""
    kinds = (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def kind_of(value: Any) -> str:
    """'a list', 'a string', ... for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "null"
    return type(value).__name__


def looks_numeric(text: str) -> bool:
    """True for a string that reads as a YAML 1.2 integer or float (`"1e-3"`, `"5"`)."""
    return bool(_INT_RE.fullmatch(text.strip()) or _FLOAT_RE.fullmatch(text.strip()))

