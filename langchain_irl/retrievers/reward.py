"""`RewardRetriever`: the reward-aware ranking of demonstrations as a LangChain retriever."""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field

from langchain_irl.example_selectors.reward import RewardExampleSelector


class RewardRetriever(BaseRetriever):
    """k Documents (fewer only if there are fewer demonstrations), best first.

    page_content is the demonstration's output; metadata holds its input, reward, relevance and
    combined score. `k` can be set in the constructor and per call: `invoke(query, k=2)`.
    """

    selector: RewardExampleSelector
    k: int = Field(default=4, ge=1)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        selector = self.selector
        examples = selector.examples
        return [
            Document(
                page_content=str(examples[demo.index][selector.output_key]),
                metadata={
                    "input": selector.input_text(examples[demo.index]),
                    "reward": demo.reward,
                    "relevance": demo.relevance,
                    "score": demo.score,
                },
            )
            for demo in selector.rank(query, self.k if k is None else k)
        ]
