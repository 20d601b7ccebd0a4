"""langchain-irl on Ray Data: scoring, collection and best-of-n datasets past one machine.

Ray Data's batch-inference pattern: `Dataset.map_batches` with a callable class in an actor pool.
Each actor builds its reward model (and its sampler) once, then handles batches. The callable
classes are `langchain_irl.batch`'s, the same code the command line runs in-process, so a job gives
the same rows with or without Ray. Needs the `[ray]` extra (`pip install "langchain-irl[ray]"`).

    import ray
    from langchain_irl.ray import score_dataset

    scored = score_dataset(ray.data.read_json("logs/*.jsonl"), "helpful", actors=8)
    scored.write_json("scored/")
"""

from langchain_irl.ray.jobs import best_of_n_dataset, collect_dataset, score_dataset

__all__ = ["best_of_n_dataset", "collect_dataset", "score_dataset"]
