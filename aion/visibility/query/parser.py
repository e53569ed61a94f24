"""Recursive-descent parser from tokens to the raw syntax tree."""

from __future__ import annotations

from typing import TypeGuard

from aion.visibility.query.lexer import QuerySyntaxError, Token, tokenize
from aion.visibility.query.syntax import (
    Raw,
    RawArithmetic,
    RawBool,
    RawColumn,
    RawCompare,
    RawFunction,
    RawIs,
    RawLogic,
    RawNot,
    RawNull,
    RawParen,
    RawRange,
    RawTuple,
    RawUnary,
    RawValue,
    Statement,
)


def _is_integer(node: Raw) -> TypeGuard[RawValue]:
    return isinstance(node, RawValue) and node.kind == "number" and node.text.isdigit()


class Parser:
    """Recursive descent over MySQL's expression grammar, as far as Temporal accepts it."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.tokens = tokenize(src)
        self.pos = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("keyword", "op") and self.tok.text in texts

    def expect(self, text: str) -> None:
        if not self.at(text):
            raise self.error()
        self.advance()

    def error(self) -> QuerySyntaxError:
        return QuerySyntaxError(self.tok.end, self.tok.near)

    def statement(self, has_where: bool) -> Statement:
        st = Statement()
        if has_where:
            st.where = self.disjunction()
        if self.at("GROUP"):
            self.advance()
            self.expect("BY")
            st.group_by.append(self.operand())
            while self.at(","):
                self.advance()
                st.group_by.append(self.operand())
        if self.at("HAVING"):
            self.advance()
            self.disjunction()
            st.having = True
        if self.at("ORDER"):
            self.advance()
            self.expect("BY")
            st.order_by.append(self.order_item())
            while self.at(","):
                self.advance()
                st.order_by.append(self.order_item())
        if self.at("LIMIT"):
            self.advance()
            self.operand()
            if self.at(",", "OFFSET"):
                self.advance()
                self.operand()
            st.limit = True
        if self.at(";"):
            self.advance()
        if self.tok.kind != "eof":
            raise self.error()
        return st

    def order_item(self) -> tuple[Raw, bool]:
        item = self.operand()
        if self.at("ASC", "DESC"):
            return item, self.advance().text == "DESC"
        return item, False

    def disjunction(self) -> Raw:
        node = self.conjunction()
        while self.at("OR", "||"):
            self.advance()
            node = RawLogic("OR", node, self.conjunction())
        return node

    def conjunction(self) -> Raw:
        node = self.negation()
        while self.at("AND", "&&"):
            self.advance()
            node = RawLogic("AND", node, self.negation())
        return node

    def negation(self) -> Raw:
        if self.at("NOT"):
            self.advance()
            return RawNot(self.negation())
        return self.predicate()

    def predicate(self) -> Raw:
        left = self.operand()
        if self.at("=", "!=", "<>", "<", "<=", ">", ">=", "<=>"):
            op = self.advance().text
            return RawCompare("!=" if op == "<>" else op, left, self.operand())
        if self.at("IS"):
            self.advance()
            negated = self.at("NOT")
            if negated:
                self.advance()
            if not self.at("NULL", "TRUE", "FALSE"):
                raise self.error()
            return RawIs(("NOT " if negated else "") + self.advance().text, left)
        negated = self.at("NOT")
        if negated:
            self.advance()
            if not self.at("IN", "BETWEEN", "LIKE", "REGEXP", "STARTS_WITH"):
                raise self.error()
        prefix = "NOT " if negated else ""
        if self.at("IN"):
            self.advance()
            return RawCompare(prefix + "IN", left, self.value_list())
        if self.at("BETWEEN"):
            self.advance()
            low = self.operand()
            self.expect("AND")
            return RawRange(negated, left, low, self.operand())
        if self.at("LIKE", "REGEXP", "STARTS_WITH"):
            op = self.advance().text
            return RawCompare(prefix + op, left, self.operand())
        return left

    def value_list(self) -> RawTuple:
        self.expect("(")
        items = [self.operand()]
        while self.at(","):
            self.advance()
            items.append(self.operand())
        self.expect(")")
        return RawTuple(tuple(items))

    def operand(self) -> Raw:
        node = self.term()
        while self.at("+", "-", "*", "/", "%"):
            self.advance()
            self.term()
            node = RawArithmetic()
        return node

    def term(self) -> Raw:
        tok = self.tok
        if tok.kind == "op" and tok.text in ("-", "+", "!", "~"):
            self.advance()
            inner = self.term()
            if _is_integer(inner) and tok.text == "-":  # MySQL folds "-<integer>" into one literal
                return RawValue("number", "-" + inner.text)
            return RawUnary(tok.text, inner, self.src[tok.start : self.tokens[self.pos - 1].end])
        if tok.kind == "op" and tok.text == "(":
            self.advance()
            items = [self.disjunction()]
            while self.at(","):
                self.advance()
                items.append(self.disjunction())
            self.expect(")")
            return RawParen(items[0]) if len(items) == 1 else RawTuple(tuple(items))
        if tok.kind == "ident":
            self.advance()
            if tok.raw and self.at("("):
                self.function_args()
                return RawFunction()
            return RawColumn(tok.text)
        if tok.kind in ("string", "number"):
            self.advance()
            return RawValue(tok.kind, tok.text)
        if self.at("TRUE", "FALSE"):
            return RawBool(self.advance().text == "TRUE")
        if self.at("NULL"):
            self.advance()
            return RawNull()
        raise self.error()

    def function_args(self) -> None:
        self.expect("(")
        while not self.at(")"):
            if self.at("*"):
                self.advance()
            else:
                self.disjunction()
            if not self.at(","):
                break
            self.advance()
        self.expect(")")
