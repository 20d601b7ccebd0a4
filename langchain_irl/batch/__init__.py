"""Batch jobs over columns of rows: scoring, collecting policy samples, best-of-n datasets.

Each job is a callable class that takes a batch (a dict of columns) and returns one: the shape of
Ray Data's `map_batches`, so `langchain_irl.ray` runs the very same code across a cluster, and the
command line runs it in-process over chunks of a file (same results either way).
"""

from langchain_irl.batch.best_of_n import BestOfNRecords
from langchain_irl.batch.collection import PartitionedCollector, sample_id
from langchain_irl.batch.scoring import BatchScorer

__all__ = ["BatchScorer", "BestOfNRecords", "PartitionedCollector", "sample_id"]
