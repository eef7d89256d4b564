# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus: no method implemented yet (the support matrix marks them planned)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

METHODS = ()
