"""Placeholder: replaced by the module's owner (see docs/DESIGN.md)."""

from ..errors import UserError


def register(sub):
    p = sub.add_parser("summary", help="(not implemented yet)")
    p.set_defaults(func=_run)


def _run(args):
    raise UserError("this command is not implemented yet")
