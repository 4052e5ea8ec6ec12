"""The answer parser on outputs real models wrote, as published (paper step 2 -> 3).

Each row is a model output quoted from a public source (URL in the row), with what
:func:`videoseg.core.cues.parse_answer` must make of it: the targets (boxes / points in the model's
pixel space) or a rejection with its reason. Outputs from other model families than ours are here on
purpose: they are shapes a Qwen2.5-VL-family checkpoint can drift into, and the parser must reject them
with a reason rather than read numbers it cannot place.

Where our stored copy of a source is cut (a search excerpt ends mid-text), the row says so and uses the
text as stored; such rows test the "truncated output" path, which is what a cut output is. A leading
space that Python's ``print(a, b)`` put between two printed values is not part of an output and is left
out. No raw Seg-Zero-7B output was found published; its schema is tested in ``test_cues.py`` with the
forms its own code writes and reads.
"""

from __future__ import annotations

import pytest

from videoseg.core.cues import CueParseError, parse_answer

QWEN25_COOKBOOK = "https://github.com/QwenLM/Qwen2.5-VL/blob/main/cookbooks/spatial_understanding.ipynb"

# (id, source URL, model, output, expected) -- expected is a list of (box, point) per target, or
# ("reject", fragment of the error message).
CAKES = [
    ([43, 571, 209, 753], "cupcake with white frosting and colorful sprinkles"),
    ([68, 408, 214, 596], "cupcake with red frosting and sprinkles"),
    ([259, 392, 386, 560], "cupcake with pink frosting and sprinkles"),
    ([412, 380, 518, 520], "cupcake with pink frosting and sprinkles"),
    ([550, 368, 675, 543], "cupcake with pink frosting and sprinkles"),
    ([306, 566, 462, 730], "cupcake with white frosting and candy eyes"),
    ([365, 678, 535, 849], "cupcake with white frosting and candy eyes"),
    ([138, 768, 319, 958], "cupcake with white frosting and candy eyes"),
    ([531, 579, 690, 739], "cupcake with white frosting and candy eyes"),
    ([652, 492, 799, 662], "cupcake with white frosting and candy eyes"),
    ([829, 525, 994, 716], "cupcake with white frosting and colorful sprinkles"),
    ([765, 393, 896, 556], "cupcake with chocolate frosting"),
]
CAKES_OUTPUT = (
    "```json\n[\n"
    + ",\n".join(f'\t{{"bbox_2d": [{", ".join(map(str, b))}], "label": "{label}"}}' for b, label in CAKES)
    + "\n]\n```"
)

CAKES_PLAIN_TEXT = (
    "138,769,315,954 蛋糕\n365,679,533,849 蛋糕\n305,567,462,729 蛋糕\n448,458,587,619 蛋糕\n"
    "532,579,689,738 蛋糕\n652,492,799,661 蛋糕\n829,525,994,716 蛋糕\n766,393,896,555 蛋糕\n"
    "412,380,518,519 蛋糕\n259,390,385,559 蛋糕\n69,408,213,595 蛋糕\n43,574,209,752 蛋糕\n"
)

SEGZERO_35_LABEL = (
    "when preparing a fruit salad, what in this image can be used to sprinkle on top of the mixed fruits "
    "to add some additional flavor and texture"
)

ROWS = [
    # ---------------------------------------------------------------- answers that are read
    (
        "qwen25-cookbook-cakes-fenced-tab-indented-labels",
        QWEN25_COOKBOOK + " (cell 'Detect certain object', Qwen2.5-VL-7B-Instruct)",
        CAKES_OUTPUT,
        [(b, None) for b, _ in CAKES],
    ),
    (
        "vlm-r1-99-dict-in-answer-tags",
        "https://github.com/om-ai-lab/VLM-R1/issues/99 (VLM-R1 Qwen2.5-VL-3B REC)",
        "<think>\nThe image shows a man standing on a concrete path next to a body of water, with a boat "
        "visible in the background. The man is wearing black shorts and appears to be interacting with "
        "something off-screen. There is another person in the background, also wearing shorts, who seems "
        "to be engaged in an activity involving a metal box or structure.\n</think>\n"
        '<answer>{"bbox_2d": [368, 1, 475, 330], "label": "man wearing blue shirt and shorts"}</answer>',
        [([368, 1, 475, 330], None)],
    ),
    (
        "vlm-r1-44a-prose-then-bare-dict",
        "https://github.com/om-ai-lab/VLM-R1/issues/44 (Qwen2.5-VL-3B-Instruct, first logged sample)",
        "The image appears to show static or a mix of visual artifacts, with no discernible pattern or "
        "color. There might be blue parts, but without further analysis, it's hard to confirm. "
        '{"bbox_2d": [0, 0, 643, 476], "label": "no discernible pattern or color"}',
        [([0, 0, 643, 476], None)],
    ),
    (
        "vlm-r1-44b-prose-then-spaced-list",
        "https://github.com/om-ai-lab/VLM-R1/issues/44 (Qwen2.5-VL-3B-Instruct, second logged sample)",
        "I notice that the image is a collage and includes numerous fragments and partial figures. It "
        "appears to be a complex arrangement with various colors, patterns, and a mix of partial figures. "
        '[ {"bbox_2d": [0, 0, 644, 476], "label": "standing woman next to guy in longsleeved blue shirt"} ]',
        [([0, 0, 644, 476], None)],
    ),
    (
        "vlm-r1-44c-prose-then-spaced-dict-apostrophe-in-label",
        "https://github.com/om-ai-lab/VLM-R1/issues/44 (Qwen2.5-VL-3B-Instruct, third logged sample)",
        "In the image, the main focus is on a close-up shot of a horse's back as it walks. This gives us a "
        "sense of perspective, as if we were looking directly at the horse's rear end. There is no "
        "indication of the presence of a brown horse in another location or at a greater distance. "
        '{ "bbox_2d": [0, 0, 643, 476], "label": "close-up shot of a horse\'s back" }',
        [([0, 0, 643, 476], None)],
    ),
    (
        "visual-rft-29-python-literal-list",
        "https://github.com/Liuziyu77/Visual-RFT/issues/29 (Qwen2-VL GRPO rollout)",
        "<think>Let's analyze the described scenario of the image. The main focus is subway station "
        "elements. The given objects seem specific to a subway or train environment with a green exit "
        "sign, a clock, a map below it, and an overhead fan. Considering this, there's a human in the "
        "image. </think>\n\n<answer> [{'bbox_2d': [608, 446, 636, 476], 'label': 'person'}]</answer>",
        [([608, 446, 636, 476], None)],
    ),
    (
        "vlm-r1-232-fenced-two-boxes",
        "https://github.com/om-ai-lab/VLM-R1/issues/232 (the multi-box answer VLM-R1 trains its model to "
        "write, quoted by a maintainer)",
        '```json\n[{"bbox_2d": [458, 96, 494, 146], "label": "helmet"}, '
        '{"bbox_2d": [231, 97, 280, 149], "label": "helmet"}]\n```',
        [([458, 96, 494, 146], None), ([231, 97, 280, 149], None)],
    ),
    (
        "qwen3-vl-2020-fence-with-json-on-its-own-line",
        "https://github.com/QwenLM/Qwen3-VL/issues/2020 (Qwen3-VL-235B, as quoted in the issue)",
        "```\njson\n[\n"
        '    {"bbox_2d": [323, 118, 444, 825], "label": "watch"},\n'
        '    {"bbox_2d": [444, 118, 565, 825], "label": "watch"},\n'
        '    {"bbox_2d": [565, 118, 686, 825], "label": "watch"},\n'
        '    {"bbox_2d": [686, 118, 807, 825], "label": "watch"}\n'
        "]\n```",
        [
            ([323, 118, 444, 825], None),
            ([444, 118, 565, 825], None),
            ([565, 118, 686, 825], None),
            ([686, 118, 807, 825], None),
        ],
    ),
    (
        "qwen-vl-384-box-text-form",
        "https://github.com/QwenLM/Qwen-VL/issues/384 (Qwen-VL-Chat)",
        "<ref>格子衬衫</ref><box>(588,499),(725,789)</box>",
        [([588, 499, 725, 789], None)],
    ),
    (
        "qwen-vl-readme-box-text-form",
        "https://github.com/QwenLM/Qwen3-VL/issues/189 (Qwen-VL's README example, quoted)",
        "<ref>击掌</ref><box>(536,509),(588,602)</box>",
        [([536, 509, 588, 602], None)],
    ),
    # ---------------------------------------------------------------- outputs rejected with a reason
    (
        "qwen25-cookbook-cakes-plain-text",
        QWEN25_COOKBOOK + " (last cell: plain-text system prompt, Qwen2.5-VL-7B-Instruct)",
        CAKES_PLAIN_TEXT,
        ("reject", "no answer in the model output"),
    ),
    (
        "qwen25-cookbook-mobile-agent-tool-call",
        "https://github.com/QwenLM/Qwen2.5-VL/blob/main/cookbooks/mobile_agent.ipynb (Qwen2.5-VL-7B)",
        '<tool_call>\n{"name": "mobile_use", "arguments": {"action": "click", "coordinate": [639, 1095]}}\n'
        "</tool_call>\n",
        ("reject", "neither a bbox_2d nor a point_2d (its keys: name, arguments)"),
    ),
    (
        "qwen25-cookbook-bird-prose",
        "https://github.com/QwenLM/Qwen2.5-VL/blob/main/cookbooks/universal_recognition.ipynb "
        "(Qwen2.5-VL-7B)",
        'This bird is a Red-winged Blackbird (Agelaius phoeniceus). In Chinese, it is called "红翅黑鹂" '
        "(hóng wì hēi lí).\n",
        ("reject", "no answer in the model output"),
    ),
    (
        "vlm-r1-112-bare-normalised-box",
        "https://github.com/om-ai-lab/VLM-R1/issues/112 (VLM-R1 training log)",
        "<think> The region in question seems to describe an old woman sitting in a chair towards the left "
        "of the image. </think>\n<answer>[0.19, 0.14, 0.46, 0.43] </answer>",
        ("reject", "list of bare numbers"),
    ),
    (
        "seg-zero-35-truncated-visionreasoner-list",
        "https://github.com/JIA-Lab-research/Seg-Zero/issues/35 (Qwen2.5-VL-3B trained with the "
        "VisionReasoner recipe; our stored copy ends mid-label)",
        " <think> The question asks for something to be used as a topping for a fruit salad, which is a "
        "crumbly, textured topping. The image shows a pie with a crumbly topping, which is likely a type of "
        "crumble topping. This crumbly topping is suitable for adding flavor and texture to a fruit salad. "
        '</think><answer>[{"bbox_2d": [509,494,550,523], "point_2d": [530,507], "label": "'
        + SEGZERO_35_LABEL
        + '"}, {"bbox_2d": [470,570,532,598], "point_2d": [490,584], "label": "'
        + SEGZERO_35_LABEL
        + '"}, {"bbox_2d": [362,624,428,668], "point_2d": [392,644], "label": "'
        + SEGZERO_35_LABEL
        + '"}, {"bbox_2d": [642,436,668,469], "point_2d": [657,451], "label": "when preparing a fruit '
        "salad, what in this image can be used to sprinkle on top of th",
        ("reject", "truncated output"),
    ),
    (
        "mm-eureka-23-cut-inside-think",
        "https://github.com/ModalMinds/MM-EUREKA/issues/23 (Qwen2.5-VL on vLLM; our stored copy ends "
        "inside the thinking)",
        '<think> The instruction "在形状菜单中选择闪电形" translates to "Select the lightning shape in the '
        'shape menu." In the provided screenshot, the lightning shape appears to be located within a '
        "specific area of the menu. The bounding box would encompass the lightning",
        ("reject", "ends inside <think>"),
    ),
    (
        "ms-swift-5280-box-start-unclosed",
        "https://github.com/modelscope/ms-swift/issues/5280 (fine-tuned Qwen2.5-VL, abnormal output 1)",
        "<|box_start|>(764,25),(1659,1)",
        ("reject", "no answer in the model output"),
    ),
    (
        "ms-swift-5280-two-box-starts",
        "https://github.com/modelscope/ms-swift/issues/5280 (abnormal output 2)",
        "<|box_start|><|box_start|>",
        ("reject", "no answer in the model output"),
    ),
    (
        "ms-swift-5280-lone-box-start",
        "https://github.com/modelscope/ms-swift/issues/5280 (abnormal output 3)",
        " <|box_start|>",
        ("reject", "no answer in the model output"),
    ),
    (
        "ms-swift-5280-three-pairs",
        "https://github.com/modelscope/ms-swift/issues/5280 (abnormal output 4)",
        "<|box_start|>(987,369),(10825,370),(1141,760)<|box_end|>",
        ("reject", "no answer in the model output"),
    ),
    (
        "deepseek-vl2-96-three-numbers",
        "https://github.com/deepseek-ai/DeepSeek-VL2/issues/96 (DeepSeek-VL2)",
        "[533, 132, 457]",
        ("reject", "list of bare numbers"),
    ),
    (
        "deepseek-vl2-96-nested-numbers",
        "https://github.com/deepseek-ai/DeepSeek-VL2/issues/96 (DeepSeek-VL2)",
        "[245,[234,543,542,244]]",
        ("reject", "list of bare numbers"),
    ),
    (
        "deepseek-vl2-96-runaway-digits",
        "https://github.com/deepseek-ai/DeepSeek-VL2/issues/96 (DeepSeek-VL2; the run of 9s is cut in "
        "our stored copy)",
        "<|Assistant|>:: <|ref|>head without helmet<|/ref|><|det|>[[0, 50, 55, 9999], [0, 5, 533, 17, "
        + "9" * 420,
        ("reject", "truncated output"),
    ),
    (
        "deepseek-vl2-100-det-interrupted",
        "https://github.com/deepseek-ai/DeepSeek-VL2/issues/100 (deepseek-vl2-small)",
        "<|Assistant|>: <|ref|>mazdaughters<|/ref|><|det|>[[220, <|ref|>compact car<|/ref|><|det|>"
        "[[220, 416, 417, 720]]<|/det|><｜end▁of▁sentence｜>",
        ("reject", "truncated output"),
    ),
    (
        "internvl-625-placeholder-box",
        "https://github.com/OpenGVLab/InternVL/issues/625 (InternVL-8B)",
        "The bounding box coordinates of the region this sentence describes are [x1, y1, x2, y2].",
        ("reject", "not valid JSON"),
    ),
    (
        "skywork-r1v-14-closing-think-then-prose",
        "https://github.com/SkyworkAI/Skywork-R1V/issues/14 (Skywork-R1V, first output)",
        "No, there is no dog in the image. The elements present are a traffic sign, a pole, cars, a "
        "motorcycle, a drain cover, and some shadows.\n</think>\n\nThe image shows a traffic sign mounted "
        "on a pole near a busy street. The sign features a red circle with a diagonal red slash through "
        "it, indicating a prohibition or no entry. There are several vehicles visible in the background, "
        "including a white car, a silver pickup truck, and a motorcycle. The street appears to be paved, "
        "and there are power lines overhead. A drain cover is visible on the ground nearby. Shadows from "
        "the pole and vehicles create interesting patterns on the asphalt.",
        ("reject", "no answer in the model output"),
    ),
    (
        "skywork-r1v-14-untagged-thinking",
        "https://github.com/SkyworkAI/Skywork-R1V/issues/14 (Skywork-R1V, second output; our stored copy "
        "is cut)",
        "Alright, I'm looking at this image and trying to figure out if there's a bowl in it. The first "
        "thing that catches my eye is the busy scene of what looks like a restaurant or bar. There are "
        "several people sitting around a counter, some wearing hats, others with different clothing. "
        "\n\nI notice a man in a baseball cap standing near the counter, possibly working there. He's "
        "wearing an ap",
        ("reject", "no answer in the model output"),
    ),
    (
        "r1-v-93-count-answer",
        "https://github.com/StarsfieldAI/R1-V/issues/93 (Qwen2-VL GRPO on CLEVR)",
        "<think>\nThe image contains a few distinct objects:\n1. A large purple cylinder.\n2. A small "
        "purple cylinder.\n3. A matte yellow cube.\n4. A small gray metallic sphere.\n\nAll of these "
        "objects appear to be separate and distinct without overlap or attachment.\n</think>\n"
        "<answer>\n5\n</answer>",
        ("reject", "no JSON list or object"),
    ),
    (
        "screenspot-7-qwen2-vl-box-tokens",
        "https://github.com/likaixin2000/ScreenSpot-Pro-GUI-Grounding/issues/7 (Qwen2-VL, as typed in "
        "the issue)",
        "<| object_def_start |>the selection<| object_def_end |><| box_start |>(501,10), (995987)"
        "<| box_dend |><| im_dend |>",
        ("reject", "no answer in the model output"),
    ),
    (
        "qwen2-vl-9-box-special-tokens",
        "https://github.com/QwenLM/Qwen3-VL/issues/9 (Qwen2-VL)",
        "<|object_ref_start|>击掌<|object_ref_end|><|box_start|>(531,516),(581,596)<|box_end|><|im_end|>",
        ("reject", "no answer in the model output"),
    ),
    (
        "univg-r1-15-bare-corner-pairs",
        "https://github.com/AMAP-ML/UniVG-R1/issues/15 (UniVG-R1, Qwen2-VL based)",
        "<think>To identify the differences between the two images, I will carefully compare each element "
        "in both images. First, I notice that the background and the hedgehog are similar in both images. "
        "Next, I focus on the objects on the hedgehog's back. In the first image, there is a red apple with "
        "a green leaf on top of the hedgehog. In the second image, the apple has changed to green. This "
        "change is the difference between the two images. To locate this difference within the relevant "
        "image, I will note the position of the apple in the first image.</think>\n"
        "<answer>(500,270),(710,480)</answer>",
        ("reject", "no JSON list or object"),
    ),
    (
        "visual-rft-245-unknown-keys",
        "https://github.com/Liuziyu77/Visual-RFT/issues/245 (Qwen3-VL-8B, Visual-RFT detection prompt)",
        "<think>\n\n</think>\n\n<answer>[{'Position': [427, 291, 498, 363], 'Confidence': 1}, "
        "{'Position': [429, 266, 507, 319], 'Confidence': 1}]</answer>",
        ("reject", "neither a bbox_2d nor a point_2d (its keys: Position, Confidence)"),
    ),
    (
        "visual-rft-118-degenerate-repetition",
        "https://github.com/Liuziyu77/Visual-RFT/issues/118 (Qwen2-VL GRPO rollout, cut by the cap)",
        "<think> ... </think <answer>['No Objects" + "Output" * 60,
        ("reject", "truncated output"),
    ),
    (
        "visual-rft-118-degenerate-template-echo",
        "https://github.com/Liuziyu77/Visual-RFT/issues/118 (Qwen2-VL GRPO rollout, cut by the cap)",
        "<think> ... </think <answer>['[between 0 and 100, 0, two decimal and between 0 and 100, 0, two "
        "decimal decimal] and between 0 and 100, , t\nwo decimal decimal] and between 0 and 10, 0, two "
        "decimal decimal and between 0 and 100, 0, two decimal decimal and between 0 and 1, 0, two decimal "
        "decimal and between 0 and 100, 0, two decimal decimal decimal and between 0 and 10, 0, two decimal "
        "decimal decimal and between 0 and 10, 0, two decimal decimal decimal and between 0 and",
        ("reject", "truncated output"),
    ),
    (
        "geochat-39-token-box",
        "https://github.com/mbzuai-oryx/GeoChat/issues/39 (GeoChat)",
        "{<91><46><94><50>|<40>}",
        ("reject", "not valid JSON"),
    ),
    (
        "videollama3-50-normalised-floats",
        "https://github.com/DAMO-NLP-SG/VideoLLaMA3/issues/50 (VideoLLaMA3, the erroneous form)",
        "[0.46, 0.51, 0.61, 0.75]",
        ("reject", "list of bare numbers"),
    ),
    (
        "videollama3-50-underscore-box",
        "https://github.com/DAMO-NLP-SG/VideoLLaMA3/issues/50 (VideoLLaMA3, the usual form)",
        "476_496_698_728",
        ("reject", "no answer in the model output"),
    ),
    (
        "cogvlm-165-double-bracket-box",
        "https://github.com/zai-org/CogVLM/issues/165 (CogVLM grounding)",
        "[[881,448,975,521]]",
        ("reject", "list of bare numbers"),
    ),
    (
        "agent-s-91-gemini-bare-point",
        "https://github.com/simular-ai/Agent-S/issues/91 (Gemini 2.5, a point as [y, x])",
        "[472, 592]",
        ("reject", "list of bare numbers"),
    ),
    (
        "cogcom-16-empty-output",
        "https://github.com/zai-org/CogCoM/issues/16 (CogCoM answered with end-of-sequence only)",
        "",
        ("reject", "empty model output"),
    ),
    # ---------------------------------------------------------------- Qwen3-VL (profile qwen3-vl)
    # Qwen3-VL answers in the same JSON shape as Qwen2.5-VL, but its numbers are on a 0..1000 grid
    # relative to the image (the qwen3-vl profile's answer_size is 1000 x 1000): the parser reads them
    # as they are; tests/reasoning/test_qwen3_vl.py checks the mapping back to frame pixels.
    (
        "qwen3-vl-2020-watches-leading-json-word",
        "https://github.com/QwenLM/Qwen3-VL/issues/2020 (Qwen3-VL-235B, four watches, 0..1000 grid)",
        "json\n[\n"
        '    {"bbox_2d": [323, 118, 444, 825], "label": "watch"},\n'
        '    {"bbox_2d": [444, 118, 565, 825], "label": "watch"},\n'
        '    {"bbox_2d": [565, 118, 686, 825], "label": "watch"},\n'
        '    {"bbox_2d": [686, 118, 807, 825], "label": "watch"}\n'
        "]",
        [
            ([323, 118, 444, 825], None),
            ([444, 118, 565, 825], None),
            ([565, 118, 686, 825], None),
            ([686, 118, 807, 825], None),
        ],
    ),
    (
        "qwen3-vl-supervision-2015-fenced-cat-dog",
        "https://github.com/roboflow/supervision/pull/2015 (the Qwen3-VL result its from_lmm docs parse)",
        '```json\n[\n    {"bbox_2d": [139, 768, 315, 954], "label": "cat"},\n'
        '    {"bbox_2d": [366, 679, 536, 849], "label": "dog"}\n]\n```',
        [([139, 768, 315, 954], None), ([366, 679, 536, 849], None)],
    ),
]


def test_the_table_is_large_and_cites_a_source_per_row() -> None:
    assert len(ROWS) >= 40
    assert len({r[0] for r in ROWS}) == len(ROWS)
    assert all(r[1].startswith("https://github.com/") for r in ROWS)


@pytest.mark.parametrize(("case", "source", "output", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_real_output(case: str, source: str, output: str, expected: object) -> None:
    if isinstance(expected, tuple):
        with pytest.raises(CueParseError) as info:
            parse_answer(output)
        assert expected[1] in str(info.value)
        assert info.value.raw == output
        return
    parsed = parse_answer(output, frame_idx=3)
    assert [(t.box, t.point) for t in parsed.targets] == [
        ([float(v) for v in box], None if point is None else [float(v) for v in point])
        for box, point in expected
    ]
    assert [t.obj_id for t in parsed.targets] == list(range(1, len(expected) + 1))
    assert all(t.frame_idx == 3 and t.negatives == [] and t.extra_points == [] for t in parsed.targets)
    assert not parsed.no_target
