# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: support_matrix
short_description: The collection's support matrix of engines, methods and features
version_added: 1.0.0
author:
  - dataprotection.databases maintainers (@dataprotection-databases)
description:
  - Returns the support matrix as data, so roles and playbooks can decide what an engine offers
    instead of hard-coding it.
  - Without terms, returns one dict with every engine. With engine names as terms, returns each engine's entry.
  - With O(feature), returns for each engine whether it offers that feature; with O(kind), the names of its methods of that kind.
options:
  _terms:
    description: Engine names, for example V(postgresql). None for the whole matrix.
    type: list
    elements: str
    required: false
  feature:
    description: Return whether each engine offers this feature instead of the whole entry.
    type: str
    choices: [scheduled, continuous, snapshot, datafile, log, full, pitr, compression]
  kind:
    description: Return the names of each engine's methods of this kind (V(tool), V(snapshot) or V(log)).
    type: str
    choices: [tool, snapshot, log]
"""

EXAMPLES = r"""
- name: Everything the collection offers for PostgreSQL
  ansible.builtin.debug:
    msg: "{{ lookup('dataprotection.databases.support_matrix', 'postgresql') }}"

- name: Take point-in-time restores only where the engine supports them
  ansible.builtin.set_fact:
    pitr_possible: "{{ lookup('dataprotection.databases.support_matrix', db_engine, feature='pitr') }}"

- name: The log backup methods of MySQL
  ansible.builtin.debug:
    msg: "{{ lookup('dataprotection.databases.support_matrix', 'mysql', kind='log') }}"
"""

RETURN = r"""
_raw:
  description:
    - The whole matrix (no terms), one entry per engine term, a boolean per engine with O(feature),
      or a list of method names per engine with O(kind).
  type: list
  elements: raw
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import DataProtectionError
from ansible_collections.dataprotection.databases.plugins.module_utils.matrix import support_matrix


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        feature = self.get_option("feature")
        kind = self.get_option("kind")
        try:
            if not terms:
                entries = [support_matrix()]
            else:
                entries = [support_matrix(str(term))[str(term)] for term in terms]
        except DataProtectionError as exc:
            raise AnsibleLookupError(str(exc))
        if feature:
            return [self._features(entry)[feature] for entry in entries] if terms else [
                dict((name, e["features"][feature]) for name, e in entries[0].items())
            ]
        if kind:
            if not terms:
                return [dict((name, self._kind(e, kind)) for name, e in entries[0].items())]
            return [self._kind(entry, kind) for entry in entries]
        return entries

    @staticmethod
    def _features(entry):
        return entry["features"]

    @staticmethod
    def _kind(entry, kind):
        return sorted(name for name, method in entry["methods"].items() if method["kind"] == kind)
