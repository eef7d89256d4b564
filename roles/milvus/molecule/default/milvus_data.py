# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test data for the role's scenario: ``populate``, ``drop``, ``search`` and ``compare`` against a Milvus at URI.

``populate URI`` creates collection ``articles`` (auto_id INT64 key, an 8-dimension float vector under an HNSW index, a title,
a JSON field, a dynamic field, a second partition) with 700 rows; ``search URI`` prints the ids and distances of ten fixed
searches as JSON; ``compare URI FILE`` searches again and exits 1 unless the ids are the same and the distances agree to
float32 rounding; ``drop URI`` drops the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import random
import sys

from pymilvus import DataType, MilvusClient

COLLECTION = "articles"
DIM = 8


def populate(client):
    rng = random.Random(3)
    schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("meta", DataType.JSON)
    index = client.prepare_index_params()
    index.add_index("embedding", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 200})
    client.create_collection(COLLECTION, schema=schema, index_params=index)
    client.create_partition(COLLECTION, "archive")
    for partition, count in (("_default", 500), ("archive", 200)):
        rows = [{"embedding": [rng.uniform(-1, 1) for dummy in range(DIM)], "title": "%s %d" % (partition, n), "meta": {"n": n},
                 "lang": "en" if n % 2 else "fr"} for n in range(count)]
        client.insert(COLLECTION, rows, partition_name=partition)
    client.flush(COLLECTION)
    print(json.dumps({"rows": client.query(COLLECTION, filter="", output_fields=["count(*)"])[0]["count(*)"]}))


def search(client):
    rng = random.Random(5)
    found = []
    for dummy in range(10):
        query = [rng.uniform(-1, 1) for dummy2 in range(DIM)]
        hits = client.search(COLLECTION, data=[query], anns_field="embedding", limit=5, output_fields=["title"],
                             search_params={"metric_type": "L2", "params": {"ef": 500}})
        found.append([[hit["id"], hit["distance"], hit["entity"]["title"]] for hit in hits[0]])
    return found


def main(argv):
    client = MilvusClient(uri=argv[1])
    if argv[0] == "populate":
        populate(client)
    elif argv[0] == "drop":
        client.drop_collection(COLLECTION)
        print(json.dumps({"collections": client.list_collections()}))
    elif argv[0] == "search":
        print(json.dumps(search(client)))
    elif argv[0] == "compare":
        with open(argv[2]) as handle:
            before = json.load(handle)
        after = search(client)
        same_ids = [[h[0] for h in hits] for hits in after] == [[h[0] for h in hits] for hits in before]
        same_titles = [[h[2] for h in hits] for hits in after] == [[h[2] for h in hits] for hits in before]
        close = all(abs(a[1] - b[1]) <= 1e-6 * max(1.0, abs(b[1])) for x, y in zip(after, before) for a, b in zip(x, y))
        print(json.dumps({"same_ids": same_ids, "same_titles": same_titles, "same_distances": close, "searches": len(after)}))
        return 0 if same_ids and same_titles and close else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
