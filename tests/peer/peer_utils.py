"""Helpers for the peer-contract tests."""
import os.path as osp
from importlib import import_module


def peer_config(codebase: str, rel_path: str) -> str:
    """Path of a config shipped with an installed codebase (what ``mmdet::``/``mmseg::`` name)."""
    return osp.join(osp.dirname(import_module(codebase).__file__), '.mim', 'configs', rel_path)
