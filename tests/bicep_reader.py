"""A small Bicep reader for the type test (tests/test_bicep_types.py): declarations, resources (nested, `existing`,
`parent`, conditional, loops), object property paths and literal values. Expressions it does not evaluate are kept
as text; a ternary whose branches are literals keeps both literals so each can be checked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PUNCT = ("...", "::", "=>", "==", "!=", "<=", ">=", "&&", "||", "??", ".?", "=~", "!~", *"{}[]():,.?!=<>+-*/%@|&")


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, punct, newline, mstring
    text: str
    line: int
    literal: str | None = None  # a string's value when it has no ${...}


@dataclass
class Lit:
    value: str | int | bool | None
    line: int


@dataclass
class Expr:
    text: str
    line: int
    alternatives: list[Lit] = field(default_factory=list)  # literal branches of a ternary


@dataclass
class Arr:
    items: list[Value]
    line: int


@dataclass
class Obj:
    entries: list[tuple[str | None, Value, int]]  # key (None when computed), value, line
    line: int
    resources: list[Resource] = field(default_factory=list)

    def get(self, key: str) -> Value | None:
        return next((value for k, value, _ in self.entries if k == key), None)


Value = Lit | Expr | Arr | Obj


@dataclass
class Resource:
    symbol: str
    type: str  # as written: full 'Ns/type@version', or a child's 'type' relative to its enclosing resource
    existing: bool
    line: int
    body: Obj
    enclosing: Resource | None = None


@dataclass
class Module:
    symbol: str
    path: str
    line: int
    body: Obj


@dataclass
class BicepFile:
    target_scope: str = "resourceGroup"
    extensions: list[str] = field(default_factory=list)
    params: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (type, has default)
    resources: list[Resource] = field(default_factory=list)  # every resource, nested ones included
    modules: list[Module] = field(default_factory=list)


class BicepSyntaxError(ValueError):
    pass


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    i, line, n = 0, 1, len(source)
    while i < n:
        c = source[i]
        if c == "\n":
            tokens.append(Token("newline", "\n", line))
            line, i = line + 1, i + 1
        elif c in " \t\r":
            i += 1
        elif source.startswith("//", i) or (c == "#" and (not tokens or tokens[-1].kind == "newline")):
            i = source.find("\n", i) if "\n" in source[i:] else n
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            end = n if end < 0 else end + 2
            line += source.count("\n", i, end)
            i = end
        elif source.startswith("'''", i):
            end = source.find("'''", i + 3)
            end = n if end < 0 else end + 3
            tokens.append(Token("string", source[i:end], line, source[i + 3 : end - 3]))
            line += source.count("\n", i, end)
            i = end
        elif c == "'":
            end, literal = _string_end(source, i)
            tokens.append(Token("string", source[i:end], line, literal))
            line += source.count("\n", i, end)
            i = end
        elif c.isdigit():
            m = re.match(r"\d+", source[i:])
            assert m
            tokens.append(Token("number", m.group(), line))
            i += len(m.group())
        elif c.isalpha() or c == "_":
            m = re.match(r"\w+", source[i:])
            assert m
            tokens.append(Token("ident", m.group(), line))
            i += len(m.group())
        else:
            punct = next((p for p in PUNCT if source.startswith(p, i)), None)
            if punct is None:
                raise BicepSyntaxError(f"line {line}: unexpected {c!r}")
            tokens.append(Token("punct", punct, line))
            i += len(punct)
    tokens.append(Token("newline", "\n", line))
    return tokens


def _string_end(source: str, start: int) -> tuple[int, str | None]:
    """Index after the single-quoted string at `start`, and its value when it holds no interpolation."""
    i, value, interpolated = start + 1, [], False
    escapes = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", "$": "$"}
    while i < len(source):
        c = source[i]
        if c == "\\":
            value.append(escapes.get(source[i + 1], source[i + 1]))
            i += 2
        elif source.startswith("${", i):
            interpolated, depth, i = True, 1, i + 2
            while i < len(source) and depth:
                if source[i] == "'":
                    i = _string_end(source, i)[0]
                    continue
                depth += {"{": 1, "}": -1}.get(source[i], 0)
                i += 1
        elif c == "'":
            return i + 1, None if interpolated else "".join(value)
        else:
            value.append(c)
            i += 1
    raise BicepSyntaxError("unterminated string")


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens, self.i = tokens, 0
        self.file = BicepFile()

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.i += 1
        return token

    def expect(self, text: str) -> Token:
        token = self.next()
        if token.text != text:
            raise BicepSyntaxError(f"line {token.line}: expected {text!r}, found {token.text!r}")
        return token

    def skip_newlines(self) -> None:
        while self.peek().kind == "newline" and self.i < len(self.tokens) - 1:
            self.i += 1

    def at_end(self) -> bool:
        return self.i >= len(self.tokens) - 1

    def parse(self) -> BicepFile:
        while True:
            self.skip_newlines()
            if self.at_end():
                return self.file
            self.statement()

    def statement(self) -> None:
        token = self.next()
        word = token.text
        if word == "@":
            self.expression()  # a decorator
        elif word == "targetScope":
            self.expect("=")
            value = self.value()
            self.file.target_scope = value.value if isinstance(value, Lit) else "?"  # type: ignore[assignment]
        elif word == "extension":
            self.file.extensions.append(self.next().text)
            self.expression()
        elif word == "param":
            name, kind = self.next().text, self.next().text
            has_default = self.peek().text == "="
            if has_default:
                self.next()
                self.value()
            elif kind not in ("{", "("):
                self.expression()
            self.file.params[name] = (kind, has_default)
        elif word in ("var", "output", "type", "func", "import", "metadata"):
            while self.peek().text != "=" and self.peek().kind != "newline":
                self.next()
            if self.peek().text == "=":
                self.next()
                self.value()
        elif word == "resource":
            self.resource(None)
        elif word == "module":
            symbol, path = self.next().text, self.next()
            self.expect("=")
            body = self.declaration_body()
            self.file.modules.append(Module(symbol, path.literal or "", token.line, body))
        else:
            raise BicepSyntaxError(f"line {token.line}: unknown statement {word!r}")

    def resource(self, enclosing: Resource | None) -> None:
        symbol, kind = self.next(), self.next()
        existing = self.peek().text == "existing"
        if existing:
            self.next()
        self.expect("=")
        resource = Resource(symbol.text, kind.literal or "", existing, symbol.line, Obj([], symbol.line), enclosing)
        self.file.resources.append(resource)
        resource.body = self.declaration_body(resource)

    def declaration_body(self, owner: Resource | None = None) -> Obj:
        """`{...}`, `if (cond) {...}` or `[for x in xs: {...}]` after a resource's or module's `=`."""
        if self.peek().text == "if":
            self.next()
            self.balanced()
        loop = self.peek().text == "["
        if loop:
            self.next()
            while self.peek().text != ":":
                if self.peek().text in "([{":
                    self.next()
                    self.balanced(opened=True)
                else:
                    self.next()
            self.next()
            if self.peek().text == "if":
                self.next()
                self.balanced()
        body = self.object(owner)
        if loop:
            self.skip_newlines()
            self.expect("]")
        return body

    def balanced(self, opened: bool = False) -> None:
        """Skip one bracketed group; `opened` when its opening bracket was already read."""
        depth = 0 if not opened else 1
        while True:
            token = self.next()
            if token.text in ("(", "[", "{"):
                depth += 1
            elif token.text in (")", "]", "}"):
                depth -= 1
            if depth == 0:
                return

    def object(self, owner: Resource | None = None) -> Obj:
        start = self.expect("{")
        obj = Obj([], start.line)
        while True:
            while self.peek().kind == "newline" or self.peek().text == ",":
                self.next()
            token = self.peek()
            if token.text == "}":
                self.next()
                return obj
            if token.text in ("@", "..."):  # a decorator, or a spread whose keys are not known here
                self.next()
                self.expression()
                continue
            if token.text == "resource" and self.peek(1).kind == "ident" and self.peek(2).kind == "string":
                self.next()
                self.resource(owner)
                obj.resources.append(self.file.resources[-1])
                continue
            self.next()
            key = token.text if token.kind == "ident" else token.literal
            self.expect(":")
            obj.entries.append((key, self.value(), token.line))

    def array(self) -> Arr:
        start = self.expect("[")
        if self.peek().text == "for":
            while self.peek().text != ":":
                self.next()
            self.next()
            item = self.value()
            self.skip_newlines()
            self.expect("]")
            return Arr([item], start.line)
        items: list[Value] = []
        while True:
            while self.peek().kind == "newline" or self.peek().text == ",":
                self.next()
            if self.peek().text == "]":
                self.next()
                return Arr(items, start.line)
            items.append(self.value())

    def value(self) -> Value:
        token = self.peek()
        if token.text == "{":
            return self.object()
        if token.text == "[" and not self._is_indexed_expression():
            return self.array()
        return self.expression()

    def _is_indexed_expression(self) -> bool:
        return False

    def expression(self) -> Expr | Lit:
        """Tokens up to the end of the line, a `,`, or a closing bracket, at bracket depth zero."""
        start, depth, parts = self.peek(), 0, []
        while True:
            token = self.peek()
            if depth == 0 and (token.kind == "newline" or token.text in (",", "}", "]", ")")):
                break
            if token.text in ("(", "[", "{"):
                depth += 1
            elif token.text in (")", "]", "}"):
                depth -= 1
            parts.append(self.next())
        return _simplify(parts, start.line)


def _literal(tokens: list[Token], line: int) -> Lit | None:
    texts = [t.text for t in tokens]
    if len(tokens) == 1:
        token = tokens[0]
        if token.kind == "string" and token.literal is not None:
            return Lit(token.literal, line)
        if token.kind == "number":
            return Lit(int(token.text), line)
        if token.text in ("true", "false"):
            return Lit(token.text == "true", line)
        if token.text == "null":
            return Lit(None, line)
    if texts[:1] == ["-"] and len(tokens) == 2 and tokens[1].kind == "number":
        return Lit(-int(tokens[1].text), line)
    return None


def _simplify(tokens: list[Token], line: int) -> Expr | Lit:
    literal = _literal(tokens, line)
    if literal is not None:
        return literal
    text = " ".join(t.text for t in tokens)
    expr = Expr(text, line)
    texts = [t.text for t in tokens]
    if texts.count("?") == 1 and texts.count(":") == 1 and texts.index("?") < texts.index(":"):
        q, c = texts.index("?"), texts.index(":")
        branches = [_literal(tokens[q + 1 : c], line), _literal(tokens[c + 1 :], line)]
        expr.alternatives = [b for b in branches if b is not None]
    return expr


def parse(source: str) -> BicepFile:
    return _Parser(tokenize(source)).parse()
