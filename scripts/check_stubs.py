"""Check the type stub ``_core.pyi`` against the compiled module ``acbmse_rs._core``.

Both directions are checked:
- every public function, class and constant of the compiled module is in the stub, and
  everything the stub declares exists in the module;
- functions, methods and constructors have the same parameters in the stub as at run
  time (names, kinds, which have defaults and the default values), read from the
  compiled functions' ``__text_signature__`` with ``inspect.signature``;
- getters are ``@property`` in the stub, and annotated constants have the stub's type.

By default the stub beside the imported module is checked (the one that ships in the
wheel); ``--stub PATH`` checks another file. Prints each problem and exits 1 if any.

Usage: python scripts/check_stubs.py [--stub PATH] [--module acbmse_rs._core]
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import sys
import types
from pathlib import Path
from typing import Any

MODULE_DUNDERS = {
    "__name__", "__doc__", "__file__", "__loader__", "__package__", "__spec__",
    "__builtins__", "__cached__", "__path__", "__all__",
}  # fmt: skip
SIMPLE_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
KINDS = {
    "posonly": inspect.Parameter.POSITIONAL_ONLY,
    "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "vararg": inspect.Parameter.VAR_POSITIONAL,
    "kwonly": inspect.Parameter.KEYWORD_ONLY,
    "kwarg": inspect.Parameter.VAR_KEYWORD,
}
_NO_DEFAULT = object()


class StubParam:
    def __init__(self, name: str, kind: inspect._ParameterKind, default: Any) -> None:
        self.name, self.kind, self.default = name, kind, default

    def describe(self) -> str:
        default = "" if self.default is _NO_DEFAULT else f"={self.default!r}"
        return f"{self.name}{default} ({self.kind.description})"


def stub_params(func: ast.FunctionDef) -> list[StubParam]:
    """The parameters of a stub function, defaults evaluated as literals."""
    a = func.args
    positional = a.posonlyargs + a.args
    defaults: list[Any] = [_NO_DEFAULT] * (len(positional) - len(a.defaults)) + [
        literal(d) for d in a.defaults
    ]
    params = [
        StubParam(arg.arg, KINDS["posonly" if i < len(a.posonlyargs) else "args"], default)
        for i, (arg, default) in enumerate(zip(positional, defaults))
    ]
    if a.vararg:
        params.append(StubParam(a.vararg.arg, KINDS["vararg"], _NO_DEFAULT))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        params.append(StubParam(arg.arg, KINDS["kwonly"], _NO_DEFAULT if d is None else literal(d)))
    if a.kwarg:
        params.append(StubParam(a.kwarg.arg, KINDS["kwarg"], _NO_DEFAULT))
    return params


def literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        return Ellipsis  # "= ..." in a stub: some default, value not stated
    return ast.literal_eval(node)


def runtime_params(obj: Any) -> list[StubParam]:
    sig = inspect.signature(obj)
    return [
        StubParam(
            p.name, p.kind, _NO_DEFAULT if p.default is inspect.Parameter.empty else p.default
        )
        for p in sig.parameters.values()
    ]


def compare_params(where: str, stub: list[StubParam], real: list[StubParam]) -> list[str]:
    problems = []
    if [p.name for p in stub] != [p.name for p in real]:
        return [
            f"{where}: parameters differ: stub ({', '.join(p.name for p in stub)}) vs "
            f"module ({', '.join(p.name for p in real)})"
        ]
    for s, r in zip(stub, real):
        # A stub may spell a positional-only runtime parameter as an ordinary one only if
        # it is the first of a method (self/cls), which is dropped before we get here.
        if s.kind != r.kind:
            problems.append(
                f"{where}: parameter {s.name}: stub {s.describe()}, module {r.describe()}"
            )
        elif (s.default is _NO_DEFAULT) != (r.default is _NO_DEFAULT):
            problems.append(
                f"{where}: parameter {s.name}: stub {s.describe()}, module {r.describe()}"
            )
        elif (
            s.default is not Ellipsis
            and s.default is not _NO_DEFAULT
            and (type(s.default) is not type(r.default) or s.default != r.default)
        ):
            problems.append(
                f"{where}: default of {s.name}: stub {s.default!r}, module {r.default!r}"
            )
    return problems


def is_property(func: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in func.decorator_list)


def check_function(
    where: str, stub: ast.FunctionDef, obj: Any, drop_first: bool, runtime_self: bool = False
) -> list[str]:
    """Compare a stub function with a compiled one.

    drop_first: the stub's first parameter is self/cls (a method or constructor).
    runtime_self: the compiled signature also starts with self (an unbound method; a
    class's own signature, used for the constructor, does not).
    """
    try:
        real = runtime_params(obj)
    except (ValueError, TypeError) as err:
        return [f"{where}: the compiled object has no readable signature ({err})"]
    params = stub_params(stub)
    if drop_first:
        if not params:
            return [f"{where}: the stub method has no self/cls parameter"]
        params = params[1:]
    if runtime_self:
        if not real or real[0].name != "self":
            return [f"{where}: the compiled method's signature does not start with self"]
        real = real[1:]
    return compare_params(where, params, real)


def check_class(name: str, stub: ast.ClassDef, cls: type) -> list[str]:
    problems: list[str] = []
    members = {node.name: node for node in stub.body if isinstance(node, ast.FunctionDef)}
    runtime = {k: v for k, v in vars(cls).items() if not k.startswith("__")}
    for attr in runtime:
        if attr not in members:
            problems.append(f"{name}.{attr}: in the module, missing from the stub")
    for attr, node in members.items():
        where = f"{name}.{attr}"
        if attr == "__new__" or attr == "__init__":
            problems += check_function(where, node, cls, drop_first=True)
        elif attr.startswith("__"):
            if not hasattr(cls, attr) or getattr(cls, attr) is getattr(object, attr, None):
                problems.append(f"{where}: in the stub, not implemented by the module's class")
        elif attr not in runtime:
            problems.append(f"{where}: in the stub, missing from the module")
        elif isinstance(runtime[attr], types.GetSetDescriptorType):
            if not is_property(node):
                problems.append(f"{where}: a getter in the module, not a @property in the stub")
        elif is_property(node):
            problems.append(f"{where}: a @property in the stub, not a getter in the module")
        else:
            problems += check_function(
                where, node, runtime[attr], drop_first=True, runtime_self=True
            )
    return problems


def check(module: types.ModuleType, stub_path: Path) -> tuple[list[str], int]:
    tree = ast.parse(stub_path.read_text(encoding="utf-8"), filename=str(stub_path))
    declared: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            declared[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared[node.target.id] = node
        # Plain assignments (type aliases such as `_FloatArray = ...`) and imports are
        # helpers of the stub, not claims about the module.

    problems: list[str] = []
    public = {
        k
        for k in vars(module)
        if k not in MODULE_DUNDERS and (not k.startswith("_") or k == "__version__")
    }
    for name in sorted(public - declared.keys()):
        problems.append(f"{name}: in the module, missing from the stub")
    for name, node in declared.items():
        if not hasattr(module, name):
            problems.append(f"{name}: in the stub, missing from the module")
            continue
        obj = getattr(module, name)
        if isinstance(node, ast.ClassDef):
            if not isinstance(obj, type):
                problems.append(f"{name}: a class in the stub, {type(obj).__name__} in the module")
            else:
                problems += check_class(name, node, obj)
        elif isinstance(node, ast.FunctionDef):
            if not callable(obj) or isinstance(obj, type):
                problems.append(
                    f"{name}: a function in the stub, {type(obj).__name__} in the module"
                )
            else:
                problems += check_function(name, node, obj, drop_first=False)
        elif isinstance(node, ast.AnnAssign):
            ann = node.annotation
            if isinstance(ann, ast.Name) and ann.id in SIMPLE_TYPES:
                if type(obj) is not SIMPLE_TYPES[ann.id]:
                    problems.append(
                        f"{name}: annotated {ann.id} in the stub, "
                        f"{type(obj).__name__} in the module"
                    )
    return problems, len(declared)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", default="acbmse_rs._core")
    parser.add_argument("--stub", type=Path, help="default: the .pyi beside the module")
    args = parser.parse_args(argv)
    module = importlib.import_module(args.module)
    if args.stub is None:
        if module.__file__ is None:
            parser.error(f"{args.module} has no __file__; pass --stub")
        stub = Path(module.__file__).parent / (args.module.rsplit(".", 1)[-1] + ".pyi")
    else:
        stub = args.stub
    if not stub.is_file():
        print(f"check_stubs: no stub file {stub}", file=sys.stderr)
        return 1
    problems, n = check(module, stub)
    for problem in problems:
        print(f"check_stubs: {stub.name}: {problem}", file=sys.stderr)
    if problems:
        print(f"check_stubs: {len(problems)} problem(s) in {stub}", file=sys.stderr)
        return 1
    print(f"check_stubs: {stub} matches {args.module} ({n} names checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
