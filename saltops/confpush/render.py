"""Rendering a set's templates on the master, for one host, before any host is touched.

Templates are Jinja, as Salt renders them (``jinja2`` is the library Salt
uses), with two differences that make a bad template a refusal instead of a
wrong file: an undefined name is an error (``StrictUndefined``), and an error
names the file and the template line.  A template sees ``cmdb`` (the host's
CMDB record, as the ``cmdb`` pillar key holds it), ``app`` (the host's
settings of this app), ``values`` (the set's values) and ``hostname``.

Secret values (``sdb://...``, ``pillar:...``) are never resolved here: the
template sees a marker in their place, and the file is handed to the minion
as a second, minion-side Jinja template (Salt's ``file.managed`` with
``template: jinja``) whose only expressions fetch those secrets with
``sdb.get`` / ``pillar.get``.  Everything else is wrapped in ``{% raw %}``,
so the minion renders nothing but the secrets.

The output is normalised exactly as ``file.managed`` normalises ``contents``
(each line ends with one ``\\n``), so the sha256 recorded here is the sha256
of the bytes on disk.
"""

import hashlib
import re
import traceback

import jinja2
import jinja2.sandbox

from saltops.confpush.model import HOST_MARK, SDB_REF, is_secret_ref
from saltops.errors import ValidationError

MARK = "@@CONFPUSH_SECRET_{}@@"
_MARK_RE = re.compile(r"@@CONFPUSH_SECRET_(\d+)@@")
_MARK_LEFTOVER = re.compile(r"@@confpush_secret_", re.IGNORECASE)
_ENDRAW = re.compile(r"\{%-?\s*endraw")

_ENV = jinja2.sandbox.SandboxedEnvironment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
)


def normalise_text(text):
    """What ``file.managed`` writes for ``contents=text`` (every line ends with one newline)."""
    return "".join(line.rstrip("\n").rstrip("\r") + "\n" for line in text.splitlines())


def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _template_line(err, name):
    """The template line a rendering error happened on."""
    line = getattr(err, "lineno", None)
    if line:
        return line
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if frame.filename == name:
            return frame.lineno
    return None


def secret_values(values):
    """``(values for the template, [references])``: each reference replaced by its marker."""
    refs, shown = [], {}
    for key, value in values.items():
        if is_secret_ref(value):
            shown[key] = MARK.format(len(refs))
            refs.append(value)
        else:
            shown[key] = value
    return shown, refs


_HOSTNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")


def host_path(path, hostname):
    """A path or command on ``hostname``: ``{hostname}`` replaced by the host's name."""
    if HOST_MARK not in path:
        return path
    if not _HOSTNAME.match(hostname) or ".." in hostname:
        raise ValidationError(f"{path}: hostname {hostname!r} cannot be part of a path")
    return path.replace(HOST_MARK, hostname)


def render_file(item, hostname, record, app, values):
    """Render one file for one host: ``{"path", "text", "sha256", "secrets"}``.

    ``text`` holds markers where secrets go; ``secrets`` lists their references.
    Raises :class:`ValidationError` naming the file and line on any error.
    """
    shown, refs = secret_values(values)
    name = host_path(item["path"], hostname)
    context = {
        "cmdb": record,
        "app": (record.get("apps") or {}).get(app) or {},
        "values": shown,
        "hostname": hostname,
    }
    try:
        template = _ENV.from_string(item["template"])
        text = template.render(context)
    except jinja2.TemplateSyntaxError as err:
        raise ValidationError(f"{name} line {err.lineno}: template syntax error: {err.message}") from None
    except Exception as err:  # noqa: BLE001 - any error of a template is the template's
        line = _template_line(err, "<template>")
        where = f" line {line}" if line else ""
        raise ValidationError(
            f"{name}{where}: cannot render for {hostname}: {type(err).__name__}: {err}"
        ) from None
    text = normalise_text(text)
    used = sorted({int(m) for m in _MARK_RE.findall(text)})
    if _MARK_LEFTOVER.search(_MARK_RE.sub("", text)):
        raise ValidationError(
            f"{name}: a secret value was changed by a filter; secrets can only be written as they are"
        )
    if used and _ENDRAW.search(text):
        raise ValidationError(f"{name}: a file holding secrets may not contain Jinja's 'endraw' tag")
    return {
        "path": name,
        "text": text,
        "sha256": sha256(text),
        "secrets": {str(i): refs[i] for i in used},
    }


def render_host(spec, app, record):
    """Every file of ``spec`` for the host of ``record``; raises on the first error."""
    return [render_file(item, record["hostname"], record, app, spec["values"]) for item in spec["files"]]


def render_all(spec, app, records):
    """``{hostname: [rendered files]}``; every problem of every host listed in one error."""
    out, problems = {}, []
    for record in records:
        try:
            out[record["hostname"]] = render_host(spec, app, record)
        except ValidationError as err:
            problems.append(str(err))
    if problems:
        raise ValidationError("the set does not render; no host was touched", sorted(set(problems)))
    return out


def minion_template(text, secrets):
    """The Jinja template the minion renders for a file that holds secrets.

    Literal text is wrapped in ``{% raw %}``; each marker becomes a lookup
    that fails the state (Salt's ``raise``) when the secret is not set.
    """
    head, parts, pos = [], [], 0
    for match in _MARK_RE.finditer(text):
        parts.append("{% raw %}" + text[pos : match.start()] + "{% endraw %}")
        index = match.group(1)
        ref = secrets[index]
        if SDB_REF.match(ref):
            lookup = f"salt['sdb.get']('{ref}')"
            missing = f"s{index} is none or s{index} == '{ref}'"
        else:
            lookup = f"salt['pillar.get']('{ref[len('pillar:') :]}', none)"
            missing = f"s{index} is none"
        head.append(
            f"{{%- set s{index} = {lookup} %}}"
            f"{{%- if {missing} %}}{{{{ raise('secret {ref} is not set on this minion') }}}}{{%- endif %}}"
        )
        parts.append(f"{{{{ s{index} }}}}")
        pos = match.end()
    # The text's final newline goes after the last raw block: file.managed ends
    # the template with one newline, Jinja drops a template's final newline and
    # Salt's renderer puts one back, so the file ends exactly as ``text`` does.
    tail = text[pos:]
    final = "\n" if tail.endswith("\n") else ""
    parts.append("{% raw %}" + tail[: len(tail) - len(final)] + "{% endraw %}" + final)
    return "".join(head) + "".join(parts)
