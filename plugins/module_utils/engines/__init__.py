# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Engines: one module per engine, named after it (``postgresql``, ``mysql``, ...).

Each engine module declares ``METHODS``, the methods it implements; the
support matrix (``matrix.py``) reads that declaration to tell implemented
methods from planned ones.  Engines are imported here statically, by name:
modules ship only the module_utils their imports name, so a dynamic import
would find nothing inside a module run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# engine name -> implementation module; an engine appears here once implemented.
REGISTRY = {}


def engine_module(engine):
    """The engine's implementation module, or None when it has none yet."""
    return REGISTRY.get(engine)


def log_chains(engine, repo, cluster):
    """Contiguous log runs of a cluster (dicts with ``start``/``end``), from the engine's log index."""
    module = engine_module(engine)
    reader = getattr(module, "log_chains", None) if module else None
    return list(reader(repo, cluster)) if reader else []
