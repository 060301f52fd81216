"""The zoom variant of the synthetic colour task: the colour is visible only through a crop.

Each 224x224 image is grey with one of its four quadrants dark; centred in the dark quadrant, a
64x64 square is a checkerboard of 2x2-pixel blocks of the answer's colour C and its mirror about
grey, 2G - C. On the task's pixel budget (56x56, what the policy is shown) every 4x4 source pixels
become one, so the square averages to grey: the dark quadrant shows where to look, not what is
there. A crop of it (``<crop>0, 0, 28, 28</crop>`` for the top-left one, in the 56x56 pixels the
policy sees) comes back at 56x56 from 112x112 source pixels, where the blocks survive.
The blank control makes every square grey.

The policy is the colour task's tiny model with the call's words in its vocabulary, taught the
call format before RL (:func:`teach_tool_format`: a cold start, as tool-using VLMs get from their
instruction tuning): supervised on transcripts that answer at once (a tenth) or crop the dark
quadrant and then answer, both with random colours. It calls the tool and knows where the dark
quadrant is, but not what a colour looks like: answering at once and cropping both start at chance, and
only reading the crop does better.
"""

from __future__ import annotations

import json
from pathlib import Path

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "white": (235, 235, 235)}
"""The answer words and their RGB colours (each with a distinct mirror about grey)."""
GREY = (128, 128, 128)
SOURCE_SIZE = 224
SQUARE = 64
"""Side of the checkerboard square, in source pixels (centred in a 112x112 quadrant)."""
BLOCK = 2
"""Side of a checkerboard block, in source pixels."""
DARK = 40
"""Grey level of the square's quadrant around the square: where to look shows at any scale."""
PIXELS = 56 * 56
"""The task's pixel budget (min and max): what the policy sees of an image or a crop."""
BOXES = ((0, 0, 28, 28), (28, 0, 56, 28), (0, 28, 28, 56), (28, 28, 56, 56))
"""Each quadrant's box in the 56x56 pixels the policy sees, by quadrant index."""
TOOL_TOKENS = ("<crop>", "</crop>")
TOOL_WORDS = ("0", "28", "56", ",")
"""The words of a crop call, added to the task's vocabulary."""
MAX_TURNS = 2
"""Responses per sample in the task's rollouts and demonstrations: a crop, then the answer."""
COLD_START_STEPS = 800
COLD_START_CROPS = 0.9
"""Share of the cold start's transcripts that crop before answering."""
COLD_START_BATCH = 32


def zoom_image(colour: str | None, quadrant: int, rng):
    """The task's source image: the square of ``colour`` (None: grey, the blank control) in ``quadrant``."""
    import numpy as np
    from PIL import Image

    pixels = np.full((SOURCE_SIZE, SOURCE_SIZE, 3), GREY, dtype=np.int32)
    pixels += rng.integers(-6, 7, pixels.shape)
    half = SOURCE_SIZE // 2
    left, top = (quadrant % 2) * half, (quadrant // 2) * half
    pixels[top : top + half, left : left + half] = DARK + rng.integers(-6, 7, (half, half, 3))  # the cue
    rgb = np.array(GREY if colour is None else COLOURS[colour])
    index = np.arange(SQUARE) // BLOCK
    checker = ((index[:, None] + index[None, :]) % 2).astype(bool)
    offset = (half - SQUARE) // 2
    square = np.where(checker[..., None], rgb, 2 * np.array(GREY) - rgb)
    pixels[top + offset : top + offset + SQUARE, left + offset : left + offset + SQUARE] = square
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_rows(path: Path, image_dir: Path, split: str, size: int, seed: int, blank: bool, question: str) -> None:
    """Write ``size`` raw ``openrlhf`` rows to ``path`` with their images in ``image_dir``: balanced
    colours and quadrants in a random order, each split from its own random stream."""
    import numpy as np

    rng = np.random.default_rng([seed, ("train", "eval").index(split), 1])
    names = list(COLOURS)
    cases = [(names[i % len(names)], (i // len(names)) % len(BOXES)) for i in range(size)]
    rng.shuffle(cases)
    with path.open("w", encoding="utf-8") as out:
        for i, (colour, quadrant) in enumerate(cases):
            image = image_dir / f"{split}-{i:05d}.png"
            zoom_image(None if blank else colour, quadrant, rng).save(image)
            row = {
                "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
                "images": [str(image.relative_to(path.parent))],
                "label": colour,
                "metadata": {"id": f"{split}-{i:05d}", "colour": colour, "quadrant": quadrant},
            }
            out.write(json.dumps(row) + "\n")


def teach_tool_format(model_dir: Path, seed: int, question: str) -> float:
    """Train the model in ``model_dir`` (in place) on random-answer transcripts with and without a
    crop of the dark quadrant (module docstring); returns the share of well-formed first
    responses it then samples."""
    import numpy as np
    import torch

    from mm_eureka_plugin.checkpoints import load_model, load_processor, model_inputs
    from mm_eureka_plugin.data.images import apply_pixel_budget
    from mm_eureka_plugin.rollouts import ImageTools, RolloutPrompt, continuation

    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 2])
    processor, tokenizer = load_processor(model_dir)
    model = load_model(str(model_dir), torch.float32).train()
    tools = ImageTools(max_turns=MAX_TURNS, max_tool_images=1, instructions=False)  # as recipes/zoom-cpu.yaml
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    end = tokenizer.eos_token

    def demo():
        quadrant = int(rng.integers(len(BOXES)))
        source = zoom_image(str(rng.choice(list(COLOURS))), quadrant, rng)
        seen = apply_pixel_budget(source, PIXELS, PIXELS)
        answer = f"{rng.choice(list(COLOURS))}{end}"
        if rng.random() >= COLD_START_CROPS:
            return [(prompt, [seen], False), (answer, [], True)]
        call = "<crop>{}, {}, {}, {}</crop>".format(*BOXES[quadrant]) + end
        episode = tools.start(RolloutPrompt(prompt, [seen], [source], min_pixels=PIXELS, max_pixels=PIXELS))
        turn = episode.step(call)
        feedback = continuation(processor, call, turn.content)
        return [(prompt, [seen], False), (call, [], True), (feedback, turn.images, False), (answer, [], True)]

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(COLD_START_STEPS):
        batch = [demo() for _ in range(COLD_START_BATCH)]
        texts = ["".join(text for text, _, _ in segments) for segments in batch]
        images = [image for segments in batch for _, seg_images, _ in segments for image in seg_images]
        inputs = model_inputs(processor, model, texts, images, "cpu")
        labels = torch.full_like(inputs["input_ids"], -100)
        for row, segments in enumerate(batch):
            position = int((inputs["attention_mask"][row] == 0).sum()) if tokenizer.padding_side == "left" else 0
            for text, seg_images, trained in segments:
                kwargs = {"images": seg_images} if seg_images else {}
                length = len(processor(text=[text], **kwargs)["input_ids"][0])
                if trained:
                    labels[row, position : position + length] = inputs["input_ids"][row, position : position + length]
                position += length
        loss = model(**inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(model_dir)
    return _well_formed_share(model, processor, prompt, rng)


def _well_formed_share(model, processor, prompt: str, rng, samples: int = 64) -> float:
    """The share of sampled first responses that are a colour word or a crop call of a quadrant."""
    import torch

    from mm_eureka_plugin.checkpoints import model_inputs, stop_token_ids
    from mm_eureka_plugin.data.images import apply_pixel_budget

    image = apply_pixel_budget(zoom_image("red", 0, rng), PIXELS, PIXELS)
    inputs = model_inputs(processor, model, [prompt] * samples, [image] * samples, "cpu")
    tokenizer = processor.tokenizer
    stops = stop_token_ids(model.generation_config, tokenizer)
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=True, max_new_tokens=12, eos_token_id=stops, pad_token_id=stops[0])
    answers = {*COLOURS, *("<crop> {} , {} , {} , {} </crop>".format(*box) for box in BOXES)}
    texts = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return sum(text.strip() in answers for text in texts) / samples
