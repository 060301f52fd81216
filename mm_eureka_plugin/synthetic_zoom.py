"""The zoom variant of the synthetic colour task: the colour is visible only through a crop.

Each 448x448 image is grey; at its centre, a 16x16 square is a checkerboard of 4x4-pixel blocks of
the answer's colour C and its mirror about grey, 2G - C. On the task's pixel budget (56x56, what the
policy is shown) every 8x8 source pixels become one, so the square averages to grey. A crop of it
(``<crop>27, 27, 29, 29</crop>``, in the 56x56 pixels the policy sees) comes back at 56x56 from its
16x16 source pixels: each block then fills one 14x14 vision patch, solid C or 2G - C, which even the
random, frozen vision tower tells apart. The square is always at the centre: the policy has to
decide to look, not search. The blank control makes the square grey.

The policy is the colour task's tiny model with the call's words in its vocabulary, taught the
call format before RL (:func:`teach_tool_format`: a cold start, as tool-using VLMs get from their
instruction tuning): supervised on transcripts that answer at once (a tenth) or crop the square
and then answer, both with random colours. It calls the tool but does not know what a colour looks
like: answering at once and cropping both start at chance, and only reading the crop does better.
"""

from __future__ import annotations

import json
from pathlib import Path

DESIGN = 3
"""The task's design (images, box, cold start), recorded with a built task: a task directory built
by an earlier design is refused, not reused."""
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "white": (235, 235, 235)}
"""The answer words and their RGB colours (each with a distinct mirror about grey)."""
GREY = (128, 128, 128)
SOURCE_SIZE = 448
SQUARE = 16
"""Side of the checkerboard square, in source pixels (centred in the image)."""
BLOCK = 4
"""Side of a checkerboard block, in source pixels: one vision patch once the square is cropped."""
PIXELS = 56 * 56
"""The task's pixel budget (min and max): what the policy sees of an image or a crop."""
BOX = (27, 27, 29, 29)
"""The square's box in the 56x56 pixels the policy sees."""
TOOL_TOKENS = ("<crop>", "</crop>")
TOOL_WORDS = ("27", "29", ",")
"""The words of a crop call, added to the task's vocabulary."""
CALL = "<crop>{}, {}, {}, {}</crop>".format(*BOX)
"""The call that crops the square, as the cold start's transcripts write it."""
MAX_TURNS = 2
"""Responses per sample in the task's rollouts and demonstrations: a crop, then the answer."""
COLD_START_STEPS = 300
COLD_START_CROPS = 0.9
"""Share of the cold start's transcripts that crop before answering."""
COLD_START_BATCH = 32


def zoom_image(colour: str | None, rng):
    """The task's source image: the square of ``colour`` (None: grey, the blank control) on noisy grey."""
    import numpy as np
    from PIL import Image

    pixels = np.full((SOURCE_SIZE, SOURCE_SIZE, 3), GREY, dtype=np.int32)
    pixels += rng.integers(-6, 7, pixels.shape)
    rgb = np.array(GREY if colour is None else COLOURS[colour])
    index = np.arange(SQUARE) // BLOCK
    checker = ((index[:, None] + index[None, :]) % 2).astype(bool)
    offset = (SOURCE_SIZE - SQUARE) // 2
    pixels[offset : offset + SQUARE, offset : offset + SQUARE] = np.where(
        checker[..., None], rgb, 2 * np.array(GREY) - rgb
    )
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_rows(path: Path, image_dir: Path, split: str, size: int, seed: int, blank: bool, question: str) -> None:
    """Write ``size`` raw ``openrlhf`` rows to ``path`` with their images in ``image_dir``: balanced
    colours in a random order, each split from its own random stream."""
    import numpy as np

    rng = np.random.default_rng([seed, ("train", "eval").index(split), 1])
    names = list(COLOURS)
    colours = [names[i % len(names)] for i in range(size)]
    rng.shuffle(colours)
    with path.open("w", encoding="utf-8") as out:
        for i, colour in enumerate(colours):
            image = image_dir / f"{split}-{i:05d}.png"
            zoom_image(None if blank else colour, rng).save(image)
            row = {
                "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
                "images": [str(image.relative_to(path.parent))],
                "label": colour,
                "metadata": {"id": f"{split}-{i:05d}", "colour": colour},
            }
            out.write(json.dumps(row) + "\n")


def teach_tool_format(model_dir: Path, seed: int, question: str) -> float:
    """Train the language model in ``model_dir`` (in place; the vision tower stays random) on
    random-answer transcripts with and without a crop of the square (module docstring); returns
    the share of well-formed first responses it then samples."""
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
        source = zoom_image(str(rng.choice(list(COLOURS))), rng)
        seen = apply_pixel_budget(source, PIXELS, PIXELS)
        answer = f"{rng.choice(list(COLOURS))}{end}"
        if rng.random() >= COLD_START_CROPS:
            return [(prompt, [seen], False), (answer, [], True)]
        call = CALL + end
        episode = tools.start(RolloutPrompt(prompt, [seen], [source], min_pixels=PIXELS, max_pixels=PIXELS))
        turn = episode.step(call)
        feedback = continuation(processor, call, turn.content)
        return [(prompt, [seen], False), (call, [], True), (feedback, turn.images, False), (answer, [], True)]

    language = [param for name, param in model.named_parameters() if ".visual." not in f".{name}"]
    optimizer = torch.optim.AdamW(language, lr=1e-3)  # the vision tower stays as built
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
    """The share of sampled first responses that are a colour word or the crop call."""
    import torch

    from mm_eureka_plugin.checkpoints import model_inputs, stop_token_ids
    from mm_eureka_plugin.data.images import apply_pixel_budget

    image = apply_pixel_budget(zoom_image("red", rng), PIXELS, PIXELS)
    inputs = model_inputs(processor, model, [prompt] * samples, [image] * samples, "cpu")
    tokenizer = processor.tokenizer
    stops = stop_token_ids(model.generation_config, tokenizer)
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=True, max_new_tokens=12, eos_token_id=stops, pad_token_id=stops[0])
    answers = {*COLOURS, "<crop> {} , {} , {} , {} </crop>".format(*BOX)}
    texts = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return sum(text.strip() in answers for text in texts) / samples
