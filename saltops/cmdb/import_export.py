"""Import and export of CMDB hosts as CSV, YAML and JSON.

Parsing keeps where every record came from (``line N``: the CSV line a row
starts on, or the YAML line of the record's mapping node), so that an import
reports each bad row with its line.  :func:`import_hosts` is all-or-nothing:
parse problems and validation problems are reported together, and nothing is
written unless every record is good.

Formats (see ``docs/cmdb.md``):

* CSV: a header row naming the columns of :data:`CSV_COLUMNS` (``hostname``
  required, any order); ``roles`` separated by ``;`` (or ``,``), ``lines`` as
  ``line=address`` pairs separated by ``;``, ``apps`` as a JSON object.
* YAML / JSON: a list of host mappings, or a mapping ``{hosts: [...]}``
  (an exported ``version`` key beside ``hosts`` is ignored).
"""

import csv
import io
import json
import os
import re
import stat

import yaml

from saltops.cmdb import repo
from saltops.cmdb.model import FIELDS, MAX_SETTINGS_DEPTH, excerpt
from saltops.errors import ValidationError

FORMATS = ("csv", "yaml", "json")
CSV_COLUMNS = (
    "hostname",
    "ip",
    "roles",
    "platform",
    "machine_type",
    "idc",
    "env",
    "status",
    "owner",
    "lines",
    "apps",
)
# The largest document one import may hand the master, by format.  The whole
# document is parsed in memory: CSV takes about 15 times its size (32 MiB: some
# 170,000 hosts, ~500 MB), YAML/JSON about 45 times (8 MiB: some 25,000 hosts
# as the YAML export writes them, ~400 MB).  Larger inventories: CSV, or several imports.
MAX_IMPORT_BYTES = {"csv": 32 * 1024 * 1024, "yaml": 8 * 1024 * 1024, "json": 8 * 1024 * 1024}
# YAML/JSON nesting allowed in an import: hosts, their apps and settings
# (model.MAX_SETTINGS_DEPTH) plus the document's own levels.
MAX_YAML_DEPTH = MAX_SETTINGS_DEPTH + 6

_SPLIT = re.compile(r"[;,]")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_EXTENSIONS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}


class ParseError(ValidationError):
    """The input is not well-formed CSV/YAML/JSON (as opposed to a bad record)."""


# -- reading the input -------------------------------------------------------------------------


def read_source(path=None, text=None, fmt=None, allowed_roots=None):
    """Return ``(text, fmt, origin)`` for an import from a file path or inline text.

    ``fmt`` is taken from the file extension when not given; inline text needs
    it unless it can be told apart (a first line of CSV headers vs YAML/JSON).
    ``allowed_roots``: the directories a path must lie in once symlinks are
    resolved (``saltops:cmdb:import_roots``); with none, paths are refused.
    Either way the document may be at most :data:`MAX_IMPORT_BYTES` of its format.
    """
    if (path is None) == (text is None):
        raise ValidationError("give exactly one of a file path or inline text to import")
    if fmt is not None:
        fmt = str(fmt).lower()
        if fmt == "yml":
            fmt = "yaml"
        if fmt not in FORMATS:
            raise ValidationError(f"unknown format {excerpt(fmt)} (known: {', '.join(FORMATS)})")
    if path is not None:
        path, real = _allowed_path(path, allowed_roots)
        if fmt is None:
            fmt = _EXTENSIONS.get(os.path.splitext(path)[1].lower())
            if fmt is None:
                raise ValidationError(
                    f"cannot tell the format of {path} from its name: pass format=csv|yaml|json"
                )
        return decode(_read_capped(real, path, fmt), path), fmt, path
    if isinstance(text, bytes):
        _check_size(len(text), "<text>", fmt)
        text = decode(text, "<text>")
    if not isinstance(text, str):
        raise ValidationError(f"inline import text must be a string, not {type(text).__name__}")
    # A character is at least one byte: the cheap check first, then the exact one.
    _check_size(len(text), "<text>", fmt)
    if fmt is None:
        fmt = guess_format(text)
    _check_size(len(text.encode("utf-8", "surrogatepass")), "<text>", fmt)
    return text, fmt, "<text>"


def _check_size(size, origin, fmt=None):
    limit = MAX_IMPORT_BYTES[fmt] if fmt else max(MAX_IMPORT_BYTES.values())
    if size > limit:
        raise ValidationError(
            f"{origin} is {size} bytes, more than the {limit} bytes "
            f"{'a ' + fmt.upper() if fmt else 'an'} import may hand the master (split it, or use CSV: docs/cmdb.md)"
        )


def _allowed_path(path, allowed_roots):
    """``(path as given, made absolute; the resolved real path)``, or why it may not be read."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    roots = [os.path.realpath(str(r)) for r in (allowed_roots or [])]
    if not roots:
        raise ValidationError(
            "imports from a path are turned off (saltops:cmdb:import_roots is empty): pass the document as text="
        )
    real = os.path.realpath(path)
    if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        raise ValidationError(
            f"{path} is outside the directories imports may read from (saltops:cmdb:import_roots: "
            f"{', '.join(roots)}); copy the file there"
        )
    return path, real


def _read_capped(real, shown, fmt):
    """The bytes of the regular file ``real``, if it is small enough for ``fmt`` (``shown`` names it in errors)."""
    limit = MAX_IMPORT_BYTES[fmt]
    try:
        # O_NONBLOCK: opening a FIFO placed in the import directory must not hang the runner.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise ValidationError(f"cannot read {shown}: {err.strerror or err}") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValidationError(f"cannot read {shown}: not a regular file")
        _check_size(info.st_size, shown, fmt)
        try:
            raw = fh.read(limit + 1)
        except OSError as err:
            raise ValidationError(f"cannot read {shown}: {err.strerror or err}") from None
    # The file may have grown since fstat.
    _check_size(len(raw), shown, fmt)
    return raw


def decode(raw, origin):
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ParseError(
            f"{origin} is not UTF-8 text", [f"line {line}: byte 0x{raw[err.start]:02x} is not UTF-8"]
        ) from None


def guess_format(text):
    """``json``, ``yaml`` or ``csv`` from the shape of the text."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in ("[", "{"):
        return "json"
    first = stripped.split("\n", 1)[0]
    if first.startswith(("-", "#", "hosts:", "version:", "---")):
        return "yaml"
    if "," in first and "hostname" in first:
        return "csv"
    raise ValidationError("cannot tell the format of the inline text: pass format=csv|yaml|json")


# -- parsing -----------------------------------------------------------------------------------


def parse(text, fmt, origin="<text>"):
    """Parse ``text`` into ``(records, problems)``.

    Each record carries ``__where__`` (``line N``).  ``problems`` lists rows that
    could not be turned into a record (a cell that is not ``line=address``, an
    ``apps`` cell that is not JSON...), each with its line.  A document that is
    not well-formed at all raises :class:`ParseError`.
    """
    if fmt == "csv":
        return parse_csv(text, origin)
    if fmt in ("yaml", "json"):
        return parse_yaml(text, origin)
    raise ValidationError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def _split_list(cell):
    return [part.strip() for part in _SPLIT.split(cell) if part.strip()]


def _csv_record(row, header, where, problems):
    if len(row) != len(header):
        problems.append(f"{where}: {len(row)} cells, the header has {len(header)} columns")
        return None
    rec = {"__where__": where}
    for column, cell in zip(header, row):
        if cell == "":
            continue
        if column == "roles":
            rec["roles"] = _split_list(cell)
        elif column == "lines":
            lines = {}
            for pair in _split_list(cell):
                name, sep, address = pair.partition("=")
                if not sep or not name.strip():
                    problems.append(f"{where}: lines entry {excerpt(pair)} is not line=address")
                    return None
                if name.strip() in lines:
                    problems.append(f"{where}: line {excerpt(name.strip())} is given twice")
                    return None
                lines[name.strip()] = address.strip()
            rec["lines"] = lines
        elif column == "apps":
            try:
                apps = json.loads(cell)
            except ValueError as err:
                problems.append(f"{where}: apps is not a JSON object ({err.msg} at column {err.colno})")
                return None
            except RecursionError:
                problems.append(f"{where}: apps nests deeper than JSON can be read here")
                return None
            if not isinstance(apps, dict):
                problems.append(f"{where}: apps must be a JSON object mapping app name to settings")
                return None
            rec["apps"] = apps
        else:
            rec[column] = cell
    return rec


def parse_csv(text, origin="<text>"):
    stream = io.StringIO(text, newline="")
    # strict: an unbalanced quote or a stray character after a quoted cell is an error.
    reader = csv.reader(stream, strict=True)
    records, problems = [], []
    header = None
    last_line = 0
    try:
        for row in reader:
            start = last_line + 1
            last_line = reader.line_num
            if not row or all(cell.strip() == "" for cell in row):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in row]
                _check_header(header, start, origin)
                continue
            rec = _csv_record(row, header, f"line {start}", problems)
            if rec is not None:
                records.append(rec)
    except csv.Error as err:
        raise ParseError(f"{origin} is not well-formed CSV", [f"line {reader.line_num}: {err}"]) from None
    if header is None:
        raise ParseError(f"{origin} is empty: a CSV import needs a header row ({','.join(CSV_COLUMNS)})")
    return records, problems


def _check_header(header, line, origin):
    problems = []
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        problems.append(
            f"line {line}: unknown column(s) {', '.join(excerpt(c) for c in unknown[:10])} "
            f"(known: {', '.join(CSV_COLUMNS)})"
        )
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        problems.append(f"line {line}: column(s) given twice: {', '.join(excerpt(c) for c in dupes[:10])}")
    if "hostname" not in header:
        problems.append(f"line {line}: the header has no 'hostname' column")
    if problems:
        raise ParseError(f"{origin}: bad CSV header", problems)


def _duplicate_keys(node, problems):
    """Report mapping keys given twice (PyYAML silently keeps the last one)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen = {}
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        problems.append(f"line {key.start_mark.line + 1}: key {excerpt(key.value)} is given twice")
                    seen[key.value] = True
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _not_well_formed(err, origin):
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(err, "problem", None) or str(err)
    return ParseError(f"{origin} is not well-formed YAML/JSON", [f"{where}{problem}"])


def _check_events(text, origin):
    """Refuse anchors, aliases and deep nesting before any node is built.

    An alias makes the document a graph: ``shop: &s {loop: *s}`` loops, and
    nested aliases multiply into more values than the text holds (each level
    doubling them).  Host records have no use for them, so they are refused
    outright, from the parser's event stream, which costs one pass and no memory.
    """
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_YAML_LOADER):
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise ParseError(
                    f"{origin}: YAML anchors and aliases are not accepted in an import",
                    [f"line {line}: write the values out in full (& and * are YAML's anchor and alias marks)"],
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ParseError(
                        f"{origin}: the document nests deeper than {MAX_YAML_DEPTH} levels",
                        [f"line {line}: app settings may nest {MAX_SETTINGS_DEPTH} levels at most"],
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as err:
        raise _not_well_formed(err, origin) from None


def parse_yaml(text, origin="<text>"):
    _check_events(text, origin)
    loader = _YAML_LOADER(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as err:
            raise _not_well_formed(err, origin) from None
        if root is None:
            raise ParseError(f"{origin} is empty: expected a list of hosts or a mapping with 'hosts'")
        items = _host_nodes(root, origin)
        records, problems = [], []
        for item in items:
            where = f"line {item.start_mark.line + 1}"
            if not isinstance(item, yaml.MappingNode):
                problems.append(f"{where}: a host must be a mapping of fields")
                continue
            dupes = []
            _duplicate_keys(item, dupes)
            if dupes:
                problems.extend(dupes)
                continue
            try:
                data = loader.construct_document(item)
            except yaml.YAMLError as err:
                problems.append(f"{where}: {getattr(err, 'problem', None) or err}")
                continue
            if not all(isinstance(k, str) for k in data):
                problems.append(f"{where}: field names must be text")
                continue
            data["__where__"] = where
            records.append(data)
        return records, problems
    finally:
        loader.dispose()


def _host_nodes(root, origin):
    if isinstance(root, yaml.SequenceNode):
        return root.value
    if isinstance(root, yaml.MappingNode):
        hosts = None
        for key, value in root.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name == "hosts":
                hosts = value
            elif name != "version":
                raise ParseError(
                    f"{origin}: unexpected top-level key",
                    [
                        f"line {key.start_mark.line + 1}: only 'hosts' (and an exported 'version') may appear here"
                    ],
                )
        if isinstance(hosts, yaml.SequenceNode):
            return hosts.value
        if isinstance(hosts, yaml.ScalarNode) and hosts.tag.endswith(":null"):
            return []
    raise ParseError(
        f"{origin}: expected a list of hosts or a mapping with a 'hosts' list",
        [f"line {root.start_mark.line + 1}: found a {type(root).__name__.replace('Node', '').lower()}"],
    )


# -- importing ---------------------------------------------------------------------------------


def _line_key(problem):
    match = re.match(r"line (\d+)", problem)
    return (int(match.group(1)) if match else 0, problem)


def import_hosts(
    store, actor, text, fmt, rules, origin="<text>", dry_run=False, mode="upsert", lb_serves=None
):
    """Parse and write hosts all-or-nothing; return the write summary.

    Raises :class:`ValidationError` listing every bad row with its line.
    """
    records, problems = parse(text, fmt, origin)
    if problems:
        # Report the validation problems of the rows that did parse too, in one list.
        try:
            with store.connect() as conn:
                repo.plan(conn, records, rules, mode=mode)
        except ValidationError as err:
            problems = problems + err.problems
        problems.sort(key=_line_key)
        raise ValidationError(f"{origin}: {len(problems)} problem(s); nothing was changed", problems)
    if not records:
        raise ValidationError(f"{origin} holds no hosts; nothing was changed")
    try:
        summary = repo.write(
            store,
            actor,
            records,
            rules=rules,
            mode=mode,
            action="import",
            lb_serves=lb_serves,
            dry_run=dry_run,
        )
    except ValidationError as err:
        raise ValidationError(
            f"{origin}: {len(err.problems)} problem(s); nothing was changed",
            sorted(err.problems, key=_line_key),
        ) from None
    summary["source"] = origin
    summary["format"] = fmt
    summary["records"] = len(records)
    return summary


# -- exporting ---------------------------------------------------------------------------------


def _exportable(record):
    return {f: record[f] for f in FIELDS if f in record}


def export_hosts(records, fmt, version=None):
    """Render host records as CSV, YAML or JSON text that :func:`parse` reads back unchanged."""
    fmt = str(fmt).lower()
    if fmt == "yml":
        fmt = "yaml"
    records = [_exportable(r) for r in records]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for rec in records:
            writer.writerow(
                [
                    rec["hostname"],
                    rec["ip"],
                    ";".join(rec["roles"]),
                    rec["platform"],
                    rec["machine_type"],
                    rec["idc"],
                    rec["env"],
                    rec["status"],
                    rec["owner"],
                    ";".join(f"{k}={v}" for k, v in sorted(rec["lines"].items())),
                    json.dumps(rec["apps"], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
                    if rec["apps"]
                    else "",
                ]
            )
        return out.getvalue()
    doc = {"version": version, "hosts": records} if version is not None else {"hosts": records}
    if fmt == "yaml":
        return yaml.dump(
            doc, Dumper=_YAML_DUMPER, allow_unicode=True, sort_keys=False, default_flow_style=False
        )
    if fmt == "json":
        return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    raise ValidationError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
