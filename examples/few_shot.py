"""Few-shot demonstrations chosen by the learned reward, in a FewShotChatMessagePromptTemplate.

python examples/few_shot.py [--k 3]
"""

import argparse

from langchain_core.prompts import ChatPromptTemplate, FewShotChatMessagePromptTemplate

from langchain_irl import RewardExampleSelector, RewardModel
from langchain_irl.bundled import data_file
from langchain_irl.data.converters import read_caption_contests

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--k", type=int, default=3)
args = parser.parse_args()

contests = read_caption_contests(data_file("caption_contest/dev.jsonl"))
examples = [  # the 20 top-rated captions of the contests the bundled model trained on
    {"input": contest.description, "output": caption}
    for contest in contests[:45]
    for caption in contest.top(20)
]
selector = RewardExampleSelector(
    examples=examples,
    reward_model=RewardModel.load("caption-humor"),
    k=args.k,
    lambda_mult=0.5,
)
prompt = ChatPromptTemplate.from_messages(
    [
        ("system", "Write a funny caption for the cartoon, like these examples."),
        FewShotChatMessagePromptTemplate(
            example_selector=selector,
            example_prompt=ChatPromptTemplate.from_messages(
                [("human", "{input}"), ("ai", "{output}")]
            ),
            input_variables=["input"],
        ),
        ("human", "{input}"),
    ]
)
for message in prompt.format_messages(input="A cat chairs a board meeting."):
    print(f"{message.type:>6}: {message.text}")
