"""Tokenizer of the list-filter language (MySQL's lexical rules, as far as Temporal uses them)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token with its source offsets."""

    kind: str  # "ident", "string", "number", "keyword", "op", "eof"
    text: str  # keywords upper-cased, strings and quoted names unescaped
    start: int
    end: int
    raw: str = ""

    @property
    def near(self) -> str | None:
        """What a syntax error at this token quotes (Temporal quotes words, not symbols)."""
        if self.kind == "keyword":
            return self.raw.lower()
        if self.kind in ("ident", "string", "number"):
            return self.text
        return None


_KEYWORDS = frozenset(
    {
        "AND", "OR", "NOT", "XOR", "IN", "BETWEEN", "IS", "NULL", "TRUE", "FALSE", "LIKE",
        "REGEXP", "STARTS_WITH", "ORDER", "GROUP", "BY", "ASC", "DESC", "LIMIT", "OFFSET",
        "HAVING",
    }
)  # fmt: skip
_OPERATOR_SYMBOLS = (  # longest first
    "<=>", "<=", ">=", "<>", "!=", "&&", "||",
    "=", "<", ">", "(", ")", ",", ";", "!", "~", "-", "+", "*", "/", "%",
)  # fmt: skip
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_IDENT = re.compile(r"[^\W\d]\w*")
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


class QuerySyntaxError(Exception):
    """A syntax error ending at source offset `end`, quoting `near` (None for a symbol)."""

    def __init__(self, end: int, near: str | None) -> None:
        super().__init__(end, near)
        self.end = end
        self.near = near


def tokenize(src: str) -> list[Token]:
    """The tokens of `src`, ending with an "eof" token; comments and blanks skipped."""
    tokens: list[Token] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
        elif c == "#" or src.startswith("--", i):
            newline = src.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif src.startswith("/*", i):
            close = src.find("*/", i + 2)
            if close < 0:
                raise QuerySyntaxError(n, None)
            i = close + 2
        elif c in "'\"`":
            text, end = _scan_quoted(src, i)
            tokens.append(Token("ident" if c == "`" else "string", text, i, end))
            i = end
        elif c.isdigit() or (c == "." and src[i + 1 : i + 2].isdigit()):
            m = _NUMBER.match(src, i)
            if m is None:
                raise QuerySyntaxError(i + 1, None)
            tokens.append(Token("number", m.group(), i, m.end()))
            i = m.end()
        elif (m := _IDENT.match(src, i)) is not None:
            word = m.group()
            kind = "keyword" if word.upper() in _KEYWORDS else "ident"
            text = word.upper() if kind == "keyword" else word
            tokens.append(Token(kind, text, i, m.end(), word))
            i = m.end()
        else:
            symbol = next((s for s in _OPERATOR_SYMBOLS if src.startswith(s, i)), None)
            if symbol is None:
                raise QuerySyntaxError(i + 1, c)
            tokens.append(Token("op", symbol, i, i + len(symbol)))
            i += len(symbol)
    tokens.append(Token("eof", "", n, n))
    return tokens


def _scan_quoted(src: str, start: int) -> tuple[str, int]:
    """Unescape the string or `name` starting at `start`; return it and the end offset."""
    quote, out, i = src[start], [], start + 1
    while i < len(src):
        c = src[i]
        if c == "\\" and quote != "`" and i + 1 < len(src):
            out.append(_ESCAPES.get(src[i + 1], src[i + 1]))
            i += 2
        elif c == quote and src[i + 1 : i + 2] == quote:
            out.append(quote)
            i += 2
        elif c == quote:
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise QuerySyntaxError(len(src), src[start + 1 :])
