"""Quickstart: load the bundled reward model, wrap a chat model with best-of-n, invoke.

    python examples/quickstart.py

The chat model here is the offline crowd of caption-contest entrants; swap in any LangChain chat
model (e.g. ChatOpenAI) and nothing else changes.
"""

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_irl import BestOfN, RewardModel
from langchain_irl.bundled import data_file
from langchain_irl.cli.crowd import CrowdChatModel
from langchain_irl.data.converters import read_caption_contests

reward_model = RewardModel.load("caption-humor")  # a bundled model, by name
contests = read_caption_contests(data_file("caption_contest/dev.jsonl"))
llm = CrowdChatModel(contests=contests, seed=0)
prompt = ChatPromptTemplate.from_messages(
    [("system", "Write a funny caption."), ("human", "{cartoon}")]
)

chain = prompt | BestOfN(llm=llm, reward_model=reward_model, n=8) | StrOutputParser()
cartoon = "A well-dressed man complaining about his fuming soup to a server"
caption = chain.invoke({"cartoon": cartoon})
print(f"{cartoon}\n-> {caption}")
print(f"reward {reward_model.score(cartoon, [caption])[0]:+.2f}")
