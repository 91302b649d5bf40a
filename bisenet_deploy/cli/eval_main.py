"""Placeholder: replaced by the module's owner (see docs/DESIGN.md)."""

import argparse

from .common import add_logging_args, run_cli
from ..errors import UserError


def build_parser():
    p = argparse.ArgumentParser(prog="eval_main")
    add_logging_args(p)
    p.set_defaults(func=_run)
    return p


def _run(args):
    raise UserError("this command is not implemented yet")


def main(argv=None):
    return run_cli(build_parser(), argv)
