"""Quickstart: load the bundled reward model, wrap a chat model with best-of-n, invoke.

    python examples/quickstart.py

The chat model here is the offline crowd of caption-contest entrants; swap in any LangChain chat
model (e.g. ChatOpenAI) and nothing else changes.
"""

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_irl import BestOfN, RewardModel
from langchain_irl.cli.crowd import CrowdChatModel, load_contests

reward_model = RewardModel.load("models/caption-humor")
llm = CrowdChatModel(contests=load_contests("data/caption_contest/dev.jsonl"), seed=0)
prompt = ChatPromptTemplate.from_messages(
    [("system", "Write a funny caption."), ("human", "{cartoon}")]
)

chain = prompt | BestOfN(llm=llm, reward_model=reward_model, n=8) | StrOutputParser()
cartoon = "A well-dressed man complaining about his fuming soup to a server"
caption = chain.invoke({"cartoon": cartoon})
print(f"{cartoon}\n-> {caption}")
print(f"reward {reward_model.score(cartoon, [caption])[0]:+.2f}")
