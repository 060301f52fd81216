"""The text between two responses is what the model's chat template writes for the whole conversation."""

import pytest

from mm_eureka_plugin.rollouts import continuation


@pytest.fixture(scope="module")
def processor(tiny_vlm_dir):
    from mm_eureka_plugin.checkpoints import load_processor

    return load_processor(tiny_vlm_dir)[0]


CONTENT = [{"type": "text", "text": "Image 2: a crop."}, {"type": "image"}]


@pytest.mark.parametrize("end", ["<|im_end|>", ""])
def test_prompt_response_and_continuation_are_the_templates_conversation(processor, end):
    user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}
    prompt = processor.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
    response = "<crop>0, 0, 28, 28</crop>" + end  # generation stops at the end-of-turn token, or is cut
    conversation = [
        user,
        {"role": "assistant", "content": "<crop>0, 0, 28, 28</crop>"},
        {"role": "user", "content": CONTENT},
    ]
    expected = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert prompt + response + continuation(processor, response, CONTENT) == expected


def test_a_template_that_does_not_extend_its_conversations_is_refused():
    class Reversing:
        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
            return "".join(str(m["content"]) for m in reversed(messages))

    with pytest.raises(ValueError, match="prefix of its continuation"):
        continuation(Reversing(), "x", CONTENT)
