"""Bounds on what Jinja computes while it *compiles* a template.

Jinja folds constant expressions at compile time (``nodes.*.as_const`` driven by ``optimizer.py``), and
Haystack compiles or introspects templates in the components' ``__init__`` (PromptBuilder,
ChatPromptBuilder, ConditionalRouter), so validation pays for them: ``{{ (9 ** (9 ** 7)) % 7 }}``
costs seconds of big-integer arithmetic that holds the GIL, and ``{{ 'a'|center(10**9) }}`` a
gigabyte. The sandbox intercepts no operator by default, so every one of them folds.

:func:`parse_bounded` folds a template the way Jinja's optimizer does (it calls Jinja's own
``as_const``), but checks each step's operands first and refuses any result past these limits:

- numbers over :data:`MAX_INT_BITS` bits (``**`` is sized from its operands before it runs);
- strings, lists or dicts over :data:`MAX_VALUE_SIZE` characters/items, counting shared parts as
  often as they would be written out (``'x' * n``, ``[l] * n``, ``%``-formatting widths, filters
  whose output grows with an argument: ``center``, ``indent``, ``replace``, ``join``, ``batch``…);
- more than :data:`MAX_FOLDED_TOTAL` folded characters/items in the whole template;
- a filter that would fold on constants whose output size this module does not know;
- more than :data:`MAX_TEMPLATE_NODES` tags, expressions and text pieces (Python's own ``compile()`` of
  the generated code holds the GIL for as long as it runs).

Two render-time costs are cheap to see here and refused too: a growing filter whose constant argument
alone is oversized (``{{ q|center(10**9) }}``), and ``range``/``lipsum`` calls with constant
arguments past what the sandbox or a worker allows (calls are never folded).

Jinja's ``**`` is left-associative: ``9 ** 9 ** 7`` is ``(9 ** 9) ** 7``, a 200-bit number, and passes.

Example::

    parse_bounded("{{ question }} {{ 2 ** 10 }}")   # a jinja2.nodes.Template, constants folded
    parse_bounded("{{ 9 ** (9 ** 7) }}")             # raises TemplateTooCostly
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from typing import Any

from jinja2 import nodes
from jinja2.optimizer import Optimizer
from jinja2.sandbox import MAX_RANGE, SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from workflows._jinja_sizes import (
    GROWING_FILTERS,
    LINEAR_FILTERS,
    MAX_VALUE_SIZE,
    Oversize,
    arg,
    describe,
    format_size,
    pow_bits,
    repeat_size,
    size_of,
)

MAX_INT_BITS = 4096
MAX_FOLDED_TOTAL = 1_000_000
MAX_LIPSUM_WORDS = 10_000
# Jinja hands the generated module to Python's compile(), which holds the GIL throughout: ~0.05 ms a node.
MAX_TEMPLATE_NODES = 2_000

_FIX = "shorten the expression or write its result out as text"


class TemplateTooCostly(ValueError):
    """Compiling the template would compute something too large; ``str()`` says what, where and the fix.

    The message continues "the template in '<param>' …", e.g. "computes a number/string too large
    to render (line 1: …); shorten the expression …".
    """


def _too_large(node: nodes.Node, detail: str) -> TemplateTooCostly:
    return TemplateTooCostly(f"computes a number/string too large to render (line {node.lineno}: {detail}); {_FIX}")


@functools.cache
def template_environment() -> SandboxedEnvironment:
    """An environment that parses and folds like Haystack's builders (same sandbox, tags and filters)."""
    from haystack.utils.jinja2_chat_extension import ChatMessageExtension
    from haystack.utils.jinja2_sandbox import HaystackSandboxedEnvironment

    env = HaystackSandboxedEnvironment(extensions=[ChatMessageExtension])
    try:
        from haystack.utils.jinja2_extensions import Jinja2TimeExtension

        env.add_extension(Jinja2TimeExtension)  # only when `arrow` is installed, as Haystack does
    except ImportError:
        pass
    return env


def parse_bounded(text: str) -> nodes.Template:
    """Parse ``text`` and fold its constants as Jinja's compiler would, refusing oversized ones.

    :raises jinja2.TemplateSyntaxError: the template does not parse (the component reports it).
    :raises TemplateTooCostly: folding it would compute an oversized value, or it nests too deeply.
    """
    env = template_environment()
    try:
        tree = env.parse(text)
        _check_node_count(tree)
        _BoundedFolder(env).visit(tree, nodes.EvalContext(env))
    except RecursionError:
        raise TemplateTooCostly("is nested too deeply to compile; split it into smaller expressions") from None
    except TemplateTooCostly:
        raise
    except ValueError:
        # The lexer turns a literal into an int, and Python refuses one of over 4300 decimal digits.
        raise TemplateTooCostly(f"contains a number too large to render (over 4,300 digits); {_FIX}") from None
    return tree


def _check_node_count(tree: nodes.Template) -> None:
    count = sum(1 for _ in itertools.islice(tree.find_all(nodes.Node), MAX_TEMPLATE_NODES + 1))
    if count > MAX_TEMPLATE_NODES:
        raise TemplateTooCostly(f"has over {MAX_TEMPLATE_NODES:,} tags, expressions and text pieces; compiling one "
                                "that large stalls the server, so shorten it or split it across components")


_NOT_CONST = object()


# --- the folder --------------------------------------------------------------------------------------

class _BoundedFolder(Optimizer):
    """Jinja's optimizer with a size check before every fold and a budget for the whole template."""

    def __init__(self, environment: SandboxedEnvironment) -> None:
        super().__init__(environment)
        self.folded_total = 0
        # Expressions that evaluate but are not representable as a Const (a generator from `batch`,
        # a bound method): their parent's as_const evaluates them again, so their value matters.
        self.values: dict[int, Any] = {}

    def generic_visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> nodes.Node:
        node = NodeTransformer.generic_visit(self, node, *args, **kwargs)
        if isinstance(node, nodes.Call):
            self._check_call(node)
        if not isinstance(node, nodes.Expr):
            return node
        self._check_before(node)
        eval_ctx = args[0] if args else None
        try:
            value = node.as_const(eval_ctx)
        except nodes.Impossible:
            return node
        except Exception:  # noqa: BLE001 - Jinja's compiler would fail here too; the component reports it
            return node
        self._check_after(node, value)
        try:
            return nodes.Const.from_untrusted(value, lineno=node.lineno, environment=self.environment)
        except nodes.Impossible:
            self.values[id(node)] = value
            return node

    def _value(self, node: nodes.Node | None) -> Any:
        if isinstance(node, nodes.Const):
            return node.value
        return self.values.get(id(node), _NOT_CONST)

    def _check_after(self, node: nodes.Node, value: Any) -> None:
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise _too_large(node, f"a {value.bit_length():,}-bit number; the limit is {MAX_INT_BITS:,} bits")
        try:
            size = size_of(value)
        except Oversize:
            raise _too_large(node, f"a value over {MAX_VALUE_SIZE:,} characters or items; "
                                   f"the limit is {MAX_VALUE_SIZE:,}") from None
        self.folded_total += size
        if self.folded_total > MAX_FOLDED_TOTAL:
            raise _too_large(node, f"its constant expressions add up to over {MAX_FOLDED_TOTAL:,} characters; "
                                   f"the limit is {MAX_FOLDED_TOTAL:,}")

    def _check_before(self, node: nodes.Expr) -> None:
        """Refuse an operation whose result would be oversized, before Jinja computes it."""
        if isinstance(node, nodes.BinExpr) and not isinstance(node, (nodes.And, nodes.Or)):
            left, right = self._value(node.left), self._value(node.right)
            if left is _NOT_CONST or right is _NOT_CONST:
                return
            if isinstance(node, nodes.Pow) and (bits := pow_bits(left, right)) > MAX_INT_BITS:
                raise _too_large(node, f"{describe(left)} ** {describe(right)} is a number of about "
                                       f"{bits:,.0f} bits; the limit is {MAX_INT_BITS:,} bits")
            size = repeat_size(left, right) if isinstance(node, nodes.Mul) else (
                format_size(left, right) if isinstance(node, nodes.Mod) else 0)
            if size > MAX_VALUE_SIZE:
                raise _too_large(node, f"{describe(left)} {node.operator} {describe(right)} is about {size:,} "
                                       f"characters or items; the limit is {MAX_VALUE_SIZE:,}")
        elif isinstance(node, nodes.Filter):
            self._check_filter(node)

    def _inputs(self, node: nodes.Filter | nodes.Call) -> tuple[list[Any], dict[str, Any]] | None:
        """The constant arguments of a filter or call, or None when any of them is not constant."""
        args = [self._value(arg) for arg in node.args]
        kwargs = {kw.key: self._value(kw.value) for kw in node.kwargs}
        dyn_args = self._value(node.dyn_args) if node.dyn_args is not None else ()
        dyn_kwargs = self._value(node.dyn_kwargs) if node.dyn_kwargs is not None else {}
        if any(value is _NOT_CONST for value in (*args, *kwargs.values(), dyn_args, dyn_kwargs)):
            return None
        if not isinstance(dyn_args, (list, tuple)) or not isinstance(dyn_kwargs, Mapping):
            return None
        return [*args, *dyn_args], {**kwargs, **{str(k): v for k, v in dyn_kwargs.items()}}

    def _check_filter(self, node: nodes.Filter) -> None:
        func = self.environment.filters.get(node.name)
        inputs = self._inputs(node)
        if func is None or inputs is None:
            return
        value = self._value(node.node) if node.node is not None else _NOT_CONST
        # Jinja folds a filter on a constant unless it takes the render context.
        folds = value is not _NOT_CONST and getattr(getattr(func, "jinja_pass_arg", None), "name", "") != "context"
        rule = GROWING_FILTERS.get(node.name)
        if rule is not None:
            # On an input (or a filter block) the argument alone can make every render huge: size it on "x".
            size = rule(value if folds else "x", *inputs)
            if size > MAX_VALUE_SIZE:
                subject = f"on {describe(value)}" if folds else "with these arguments"
                raise _too_large(node, f"the filter '{node.name}' {subject} gives about {size:,} characters "
                                       f"or items; the limit is {MAX_VALUE_SIZE:,}")
        elif folds and node.name not in LINEAR_FILTERS:
            raise TemplateTooCostly(f"applies the filter '{node.name}' to constants at compile time (line "
                                    f"{node.lineno}), and its result size is unknown; apply it to an input instead")

    def _check_call(self, node: nodes.Call) -> None:
        """``range``/``lipsum`` are not folded, but constant arguments say now what rendering would cost."""
        if not isinstance(node.node, nodes.Name) or node.node.name not in ("range", "lipsum"):
            return
        inputs = self._inputs(node)
        if inputs is None:
            return
        args, kwargs = inputs
        if node.node.name == "range":
            try:
                items = len(range(*args, **kwargs))
            except (TypeError, ValueError, OverflowError):
                return
            if items > MAX_RANGE:
                raise TemplateTooCostly(f"loops over range() with {items:,} items (line {node.lineno}); Jinja's "
                                        f"sandbox stops at {MAX_RANGE:,}, so loop over an input or a smaller range")
            return
        paragraphs, most = arg(args, kwargs, 0, "n", 5), arg(args, kwargs, 3, "max", 100)
        if isinstance(paragraphs, int) and isinstance(most, int) and paragraphs * most > MAX_LIPSUM_WORDS:
            raise TemplateTooCostly(f"asks lipsum() for up to {paragraphs * most:,} words (line {node.lineno}); "
                                    f"the limit is {MAX_LIPSUM_WORDS:,}, so ask for fewer paragraphs")
