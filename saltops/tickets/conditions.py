"""The ``when:`` conditions of approval steps: a small expression language over the form, never ``eval``.

Grammar::

    expr   := term ("or" term)*
    term   := factor ("and" factor)*
    factor := "not" factor | "(" expr ")" | FIELD OP value | FIELD ["not"] "in" "[" value ("," value)* "]"
    OP     := "==" | "!="
    value  := 'text' | "text" | number | true | false | null | bare-word

A condition is parsed once, when its template is saved (:func:`parse`
refuses bad syntax and unknown fields), and evaluated with
:func:`evaluate` against a ticket's form.
"""

import re

from saltops.errors import ValidationError

_TOKEN = re.compile(r"""\s*(?:(==|!=)|([\[\](),])|'([^']*)'|"([^"]*)"|([^\s\[\](),'"=!]+))""")
_KEYWORDS = {"and", "or", "not", "in"}


def _tokens(text):
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ValidationError(f"condition {text!r}: cannot read it at {text[pos:]!r}")
        op, punct, single, double, word = match.groups()
        if op or punct:
            out.append(("op", op or punct))
        elif single is not None or double is not None:
            out.append(("str", single if single is not None else double))
        else:
            out.append(("word", word))
        pos = match.end()
    return out


def _literal(kind, text):
    if kind == "str":
        return text
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


class _Parser:
    def __init__(self, text, fields):
        self.text = text
        self.fields = fields
        self.toks = _tokens(text)
        self.pos = 0

    def fail(self, message):
        raise ValidationError(f"condition {self.text!r}: {message}")

    def peek(self):
        return self.toks[self.pos] if self.pos < len(self.toks) else (None, None)

    def take(self, value=None):
        kind, tok = self.peek()
        if kind is None:
            self.fail("ends too early")
        if value is not None and tok != value:
            self.fail(f"expected {value!r}, got {tok!r}")
        self.pos += 1
        return kind, tok

    def is_word(self, word):
        kind, tok = self.peek()
        return kind == "word" and tok == word

    def expr(self):
        node = self.term()
        while self.is_word("or"):
            self.take()
            node = ("or", node, self.term())
        return node

    def term(self):
        node = self.factor()
        while self.is_word("and"):
            self.take()
            node = ("and", node, self.factor())
        return node

    def value(self):
        kind, tok = self.take()
        if kind == "op" or (kind == "word" and tok in _KEYWORDS):
            self.fail(f"expected a value, got {tok!r}")
        return _literal(kind, tok)

    def factor(self):
        if self.is_word("not"):
            self.take()
            return ("not", self.factor())
        if self.peek() == ("op", "("):
            self.take()
            node = self.expr()
            self.take(")")
            return node
        kind, field = self.take()
        if kind != "word" or field in _KEYWORDS:
            self.fail(f"expected a form field, got {field!r}")
        if self.fields is not None and field not in self.fields:
            self.fail(f"unknown field {field!r} (the form has: {', '.join(sorted(self.fields)) or 'none'})")
        negate = False
        if self.is_word("not"):
            self.take()
            negate = True
        kind, op = self.take()
        if op in ("==", "!=") and not negate:
            return (op, field, self.value())
        if kind == "word" and op == "in":
            self.take("[")
            values = [self.value()]
            while self.peek() == ("op", ","):
                self.take()
                values.append(self.value())
            self.take("]")
            return ("not in" if negate else "in", field, values)
        self.fail(f"expected ==, != or in after {field!r}, got {op!r}")
        return None

    def parse(self):
        if not self.toks:
            self.fail("is empty")
        node = self.expr()
        if self.pos != len(self.toks):
            self.fail(f"unexpected {self.toks[self.pos][1]!r}")
        return node


def parse(text, fields=None):
    """The syntax tree of condition ``text``; :class:`ValidationError` on bad syntax or a field not in ``fields``."""
    if not isinstance(text, str):
        raise ValidationError(f"condition {text!r}: must be text such as \"env == prod\"")
    return _Parser(text, fields).parse()


def _same(left, right):
    # The form holds typed values; a condition written as text compares equal to their text.
    if left == right and type(left) is not bool and type(right) is not bool:
        return True
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right or (isinstance(right, str) and str(left).lower() == right.lower())
    return left is not None and right is not None and str(left) == str(right)


def evaluate(node, form):
    """Whether the parsed condition ``node`` holds for ``form`` (a field left empty is ``None``)."""
    head = node[0]
    if head == "or":
        return evaluate(node[1], form) or evaluate(node[2], form)
    if head == "and":
        return evaluate(node[1], form) and evaluate(node[2], form)
    if head == "not":
        return not evaluate(node[1], form)
    value = form.get(node[1])
    if head == "==":
        return _same(value, node[2])
    if head == "!=":
        return not _same(value, node[2])
    members = value if isinstance(value, list) else [value]
    found = any(_same(m, choice) for m in members for choice in node[2])
    return found if head == "in" else not found


def holds(text, form):
    """Parse and evaluate in one go (a template's conditions were checked when it was saved)."""
    return evaluate(parse(text), form)
