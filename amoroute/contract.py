"""Constants derived from the protos, for code that needs them without a message at hand."""

from amoroute.v1 import deal_pb2

# "source", "medium", "campaign", "content", "term": the fields of UtmMarks.
UTM_KEYS: tuple[str, ...] = tuple(f.name for f in deal_pb2.UtmMarks.DESCRIPTOR.fields)
