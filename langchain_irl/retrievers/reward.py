"""`RewardRetriever`: the reward-aware ranking of demonstrations as a LangChain retriever."""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from langchain_irl.example_selectors.reward import RewardExampleSelector


class RewardRetriever(BaseRetriever):
    """The demonstrations most worth showing for a query, as LangChain Documents, best first.

    k Documents (fewer only if there are fewer demonstrations), ranked by a
    `RewardExampleSelector`: page_content is the demonstration's output; metadata holds its
    input, reward, relevance and combined score.

    **Instantiate**

    ```python
    from langchain_irl import RewardExampleSelector, RewardModel, RewardRetriever

    selector = RewardExampleSelector.from_jsonl("demos.jsonl", RewardModel.load("caption-humor"))
    retriever = RewardRetriever(selector=selector, k=3)
    ```

    **Invoke**

    ```python
    documents = retriever.invoke("A chef and a smoking pot.")
    documents = retriever.invoke("A chef and a smoking pot.", k=2)  # k per call
    documents = await retriever.ainvoke("A chef and a smoking pot.")
    documents[0].metadata  # {'input': ..., 'reward': ..., 'relevance': ..., 'score': ...}
    ```

    **In a chain**

    ```python
    chain = retriever | (lambda docs: "\n\n".join(d.page_content for d in docs))
    ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, use_attribute_docstrings=True)

    selector: RewardExampleSelector
    """The selector whose demonstrations and ranking the retriever serves."""
    k: int = Field(default=4, ge=1)
    """Documents per query (a per-call `k=` overrides it)."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        selector = self.selector
        return [
            Document(
                page_content=str(example[selector.output_key]),
                metadata={
                    "input": selector.input_text(example),
                    "reward": demo.reward,
                    "relevance": demo.relevance,
                    "score": demo.score,
                },
            )
            for example, demo in selector.pick(query, self.k if k is None else k)
        ]
