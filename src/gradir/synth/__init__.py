"""Synthetic data: queries of several types, round-trip filtering, documents at relevance levels."""

from gradir.synth.documents import generate_documents
from gradir.synth.queries import QUERY_TYPES, generate_queries
from gradir.synth.roundtrip import round_trip_filter

__all__ = ["QUERY_TYPES", "generate_documents", "generate_queries", "round_trip_filter"]
