#!/usr/bin/env python3
"""Write tests/tokenizer/corpus.jsonl: the tokenizer test corpus (deterministic, no network).

Each line is {"i": index, "cat": category, "b64": base64 of the raw bytes}. Bytes, not text, so
that invalid UTF-8 survives. Re-running this script gives a byte-identical file; after changing it,
re-run tests/tokenizer/make_reference.py (with $PVM_PYTHON) to refresh the reference ids.

Code points are taken only from characters assigned in Unicode 14 (this Python's unicodedata is
what filters them), minus blocks added later, so that the C++ side (utf8proc, Unicode 15) and
the reference, HF tokenizers (Oniguruma), agree on every character class.
"""
import base64
import json
import os
import random
import sys
import unicodedata

SEED = 20251122
rng = random.Random(SEED)
corpus = []  # (category, bytes)


def add(cat, s):
    b = s if isinstance(s, bytes) else s.encode("utf-8")
    corpus.append((cat, b))


# ----------------------------------------------------------------------------------------------
# Prose, written for this corpus.
# ----------------------------------------------------------------------------------------------
PROSE = {
    "en": [
        "The quick brown fox jumps over the lazy dog.",
        "It's a truth universally acknowledged that models need good tokenizers.",
        "She said, \"We'll meet at 10:30 a.m. on Tuesday, won't we?\"",
        "Researchers measured 3.14159 units of something; nobody knew what.",
        "Hello, world! This is PVM Studio speaking.",
        "I'd rather be reading than writing unit tests, but here we are.",
        "The image shows a red bicycle leaning against a brick wall.",
        "Describe this image in detail, including colours and shapes.",
        "They've been working on the vision encoder since last spring.",
        "Don't panic: the answer is forty-two (42), as everyone knows.",
        "URLs like https://example.com/path?q=1&r=two#frag appear in text.",
        "Email me at someone.name+tag@example.org if anything breaks.",
    ],
    "fr": [
        "L'été dernier, nous sommes allés à la plage près de Marseille.",
        "Où est la bibliothèque ? Je voudrais emprunter un livre français.",
        "C'est déjà l'heure du goûter ; les enfants ont très faim.",
        "Ça ne fait rien, répondit-il avec un sourire énigmatique.",
        "Les œuvres d'art de la Renaissance sont exposées au musée.",
    ],
    "de": [
        "Die Straße war nass, weil es die ganze Nacht geregnet hatte.",
        "Größere Modelle benötigen mehr Speicher und längere Trainingszeiten.",
        "Übermorgen fahren wir mit dem Zug nach München.",
        "Das Fußballspiel endete unentschieden, zwei zu zwei.",
    ],
    "es": [
        "¿Dónde está la estación de tren? ¡Necesito llegar pronto!",
        "El niño comió una manzana y después jugó en el jardín.",
        "La señora Núñez enseña matemáticas en la universidad.",
    ],
    "pt": [
        "A educação é a base de uma sociedade mais justa e solidária.",
        "Não sei se ele já chegou à estação de comboios.",
    ],
    "vi": [
        "Tiếng Việt có nhiều dấu thanh và nguyên âm đặc biệt.",
        "Hôm nay trời đẹp, chúng tôi đi dạo quanh hồ Hoàn Kiếm.",
        "Người ta nói rằng học một ngôn ngữ mới mở ra một thế giới mới.",
    ],
    "pl": [
        "Zażółć gęślą jaźń, powiedział nauczyciel na lekcji.",
        "Wszyscy czekali na pociąg, który miał opóźnienie.",
    ],
    "tr": [
        "İstanbul'da yaşayan öğrenciler sınavlara hazırlanıyor.",
        "Şişeyi çöpe atmadan önce yıkamayı unutma.",
    ],
    "zh": [
        "今天天气很好，我们去公园散步吧。",
        "这张图片显示了一只坐在窗台上的猫。",
        "机器学习模型需要大量的数据进行训练。",
        "請描述這張圖片中的內容，包括顏色和形狀。",
        "他说：“我们明天早上八点在图书馆见面。”",
        "北京是中华人民共和国的首都，历史悠久。",
        "人工智能正在改变我们的生活方式和工作方式。",
    ],
    "ja": [
        "今日はとても良い天気ですね。散歩に行きましょう。",
        "この画像には、赤い自転車が写っています。",
        "カタカナとひらがなと漢字を混ぜて書きます。",
        "東京タワーの高さは三百三十三メートルです。",
        "ｶﾀｶﾅの半角文字もたまに使われます。",
    ],
    "ko": [
        "안녕하세요, 만나서 반갑습니다.",
        "이 사진에는 바닷가에 있는 등대가 보입니다.",
        "한국어는 한글이라는 고유한 문자를 사용합니다.",
        "내일 아침에 도서관에서 만나요.",
    ],
    "ar": [
        "مرحبا بكم في عالم الذكاء الاصطناعي.",
        "تظهر الصورة قطة تجلس بجانب النافذة.",
        "اللغة العربية تكتب من اليمين إلى اليسار.",
        "ذهبتُ إلى السوقِ واشتريتُ بعضَ الفاكهةِ.",
        "كم عمرك؟ عمري ٢٥ سنة.",
    ],
    "he": [
        "שלום עולם, מה שלומך היום?",
        "הספר נמצא על השולחן ליד החלון.",
    ],
    "fa": [
        "امروز هوا بسیار خوب است و ما به پارک می‌رویم.",
    ],
    "ru": [
        "Съешь же ещё этих мягких французских булок, да выпей чаю.",
        "На картинке изображён кот, сидящий на подоконнике.",
        "Москва — столица России, крупнейший город страны.",
        "Модели машинного обучения требуют много данных.",
        "Ёжик в тумане искал свою лошадку.",
    ],
    "uk": [
        "Україна — держава у Східній Європі, її столиця Київ.",
        "Ґанок біля хати був пофарбований у жовтий колір.",
    ],
    "hi": [
        "नमस्ते, आप कैसे हैं?",
        "इस चित्र में एक लाल साइकिल दिखाई दे रही है।",
        "भारत एक विशाल और विविधताओं से भरा देश है।",
        "मशीन लर्निंग मॉडल को बहुत सारे डेटा की ज़रूरत होती है।",
        "क़िला, ख़बर और ग़ज़ल में नुक़्ता लगता है।",
    ],
    "mr": [
        "मराठी भाषा महाराष्ट्रात बोलली जाते.",
    ],
    "th": [
        "สวัสดีครับ ยินดีที่ได้รู้จัก",
        "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
    ],
    "el": [
        "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
        "Καλημέρα! Τι κάνεις σήμερα;",
    ],
    "ka": ["საქართველოს დედაქალაქი თბილისია."],
    "hy": ["Բարև ձեզ, ինչպե՞ս եք։"],
    "ta": ["தமிழ் ஒரு பழமையான மொழி."],
    "bn": ["আমি বাংলায় কথা বলি।"],
}

for lang, sents in PROSE.items():
    for s in sents:
        add("prose_" + lang, s)
    for _ in range(12):
        k = rng.randint(2, 4)
        picks = [rng.choice(sents) for _ in range(k)]
        sep = rng.choice([" ", "\n", "\n\n", "  ", "\r\n", "\t", ""])
        add("prose_" + lang, sep.join(picks))

ALL_SENTS = [s for v in PROSE.values() for s in v]
for _ in range(120):  # mixed-script paragraphs
    k = rng.randint(2, 6)
    parts = [rng.choice(ALL_SENTS) for _ in range(k)]
    add("prose_mixed", rng.choice([" ", "\n", " \n", "\n\n\n"]).join(parts))

# Latin case and punctuation games
for _ in range(60):
    s = rng.choice(PROSE["en"] + PROSE["fr"] + PROSE["de"])
    mode = rng.randint(0, 3)
    if mode == 0:
        s = s.upper()
    elif mode == 1:
        s = s.lower()
    elif mode == 2:
        s = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in s)
    else:
        s = s.replace(" ", rng.choice(["_", "-", "  ", "\t", "\u00a0", ""]))
    add("prose_case", s)

# ----------------------------------------------------------------------------------------------
# Code
# ----------------------------------------------------------------------------------------------
CODE = [
    'def main(argv):\n    for i, arg in enumerate(argv):\n        print(f"{i}: {arg!r}")\n    return 0\n',
    "#include <vector>\n\nint sum(const std::vector<int>& v) {\n  int s = 0;\n  for (int x : v) s += x;\n  return s;\n}\n",
    "const add = (a, b) => a + b;\nconsole.log(add(2, 3)); // 5\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    '<html>\n  <body class="main">\n    <p>Hello &amp; welcome!</p>\n  </body>\n</html>\n',
    '{"ids": [1, 2, 3], "text": "hello", "nested": {"a": null, "b": true}}',
    "model:\n  name: qwen3-vl\n  layers: 36\n  heads: [32, 8]\n",
    "all: build\n\nbuild:\n\tcmake --build build -j2\n\n.PHONY: all build\n",
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do\n  wc -l \"$f\"\ndone\n",
    "x = torch.randn(2, 3, dtype=torch.bfloat16)\ny = x @ x.T  # (2, 2)\n",
    "    if (a && b || !c) { return a->b[i++] << 2; }\n",
    "// TODO(pvm): handle the edge case where n == 0\n/* multi-line\n   comment */\n",
    "class Foo(Bar):\n\tdef __init__(self):\n\t\tsuper().__init__()\n\t\tself._x = {'k': [1, 2.5, -3e-4]}\n",
    "regex = r'^(?:[a-z0-9_.+-]+)@(?:[a-z0-9-]+\\.)+[a-z]{2,}$'\n",
    "    \n\n        \n    return;\n}\n\n\n",
    "diff --git a/x.py b/x.py\n@@ -1,3 +1,4 @@\n-old line\n+new line\n+another\n",
    "printf(\"%d %s %.3f\\n\", n, name, value);",
    "λx. λy. x (y z) ≡ Γ ⊢ e : τ → σ",
    "int main(){return 0;}//no spaces at all",
]
for c in CODE:
    add("code", c)
    add("code_crlf", c.replace("\n", "\r\n"))
    add("code_tabs", c.replace("    ", "\t"))
for _ in range(60):
    lines = []
    for _ in range(rng.randint(3, 10)):
        indent = rng.choice(["", "  ", "    ", "\t", "\t\t", "        "])
        tok = rng.choice(["x", "foo_bar", "self.y", "return", "if (", "})", "[i]", "== 0", "+= 1", "# c", "//", "'s'", '"q"'])
        lines.append(indent + " ".join(rng.choice([tok, tok.upper(), "0x1F", "3.0", "i"]) for _ in range(rng.randint(1, 5))))
    add("code_random", rng.choice(["\n", "\r\n", "\n\n"]).join(lines) + rng.choice(["", "\n", "\n\n", "   "]))

# ----------------------------------------------------------------------------------------------
# Numbers
# ----------------------------------------------------------------------------------------------
UNICODE_DIGITS = [
    "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "০১২৩৪৫৬৭৮৯", "０１２３４５６７８９", "๐๑๒๓๔๕๖๗๘๙",
    "²³¹⁴⁵", "½¼¾⅓⅞", "ⅠⅡⅢⅣⅫⅯ", "①②③⑩⑳", "𝟎𝟏𝟐𝟑𝟗", "〇一二三", "፩፪፫", "߀߁߂",
]
for _ in range(150):
    kind = rng.randint(0, 9)
    if kind == 0:
        s = str(rng.randint(0, 10 ** rng.randint(1, 30)))
    elif kind == 1:
        s = f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 8)}f}"
    elif kind == 2:
        s = f"{rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30):e}"
    elif kind == 3:
        s = f"{rng.randint(1900, 2100)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
    elif kind == 4:
        s = f"+{rng.randint(1, 99)} ({rng.randint(100, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    elif kind == 5:
        s = ".".join(str(rng.randint(0, 255)) for _ in range(4)) + f":{rng.randint(1, 65535)}"
    elif kind == 6:
        s = f"v{rng.randint(0, 20)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}-rc{rng.randint(1, 9)}"
    elif kind == 7:
        s = rng.choice(["$", "€", "£", "¥", "₹", "₩"]) + f"{rng.randint(0, 10 ** 7):,}" + rng.choice(["", ".00", ".99"])
    elif kind == 8:
        s = rng.choice(UNICODE_DIGITS)
        s = "".join(rng.choice(s) for _ in range(rng.randint(1, 12)))
    else:
        s = " ".join(str(rng.randint(0, 999)) for _ in range(rng.randint(2, 12)))
    add("numbers", s)
for d in UNICODE_DIGITS:
    add("numbers_unicode", d)
    add("numbers_unicode", "x" + d + " " + d + "y")

# ----------------------------------------------------------------------------------------------
# Whitespace runs and newlines
# ----------------------------------------------------------------------------------------------
WS = [" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", "\u00a0", "\u3000", "\u2003", "\u2009", "\u0085",
      "\u2028", "\u2029", "\u000b", "\u000c", "\u1680", "\u202f", "\u205f", "\u200a"]
NOT_WS = ["\u200b", "\ufeff", "\u180e", "\u001c", "\u001f", "\u2060"]  # look like spaces, are not \s
WORDS = ["a", "word", "Hello", "x1", "42", "!", "...", "漢字", "слово", "—", "(", ")", "é", "'s", "<", ">"]
for _ in range(320):
    parts = []
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if r < 0.55:
            parts.append("".join(rng.choice(WS) for _ in range(rng.randint(1, 6))))
        elif r < 0.65:
            parts.append(rng.choice(NOT_WS) * rng.randint(1, 3))
        else:
            parts.append(rng.choice(WORDS))
    add("whitespace", "".join(parts))
for w in WS + NOT_WS:
    for n in (1, 2, 3):
        add("whitespace_single", w * n)
        add("whitespace_single", "x" + w * n + "y")
        add("whitespace_single", w * n + "x")
        add("whitespace_single", "x " + w * n)
for n in (1, 2, 3, 7, 16, 33, 100):
    add("whitespace_long", " " * n + "x")
    add("whitespace_long", "\n" * n)
    add("whitespace_long", "\t" * n + "y")
    add("whitespace_long", "a" + " \r\n" * n + "b")

# ----------------------------------------------------------------------------------------------
# Contractions
# ----------------------------------------------------------------------------------------------
CONTR = ["s", "t", "re", "ve", "m", "ll", "d"]
for c in CONTR:
    for variant in sorted({c, c.upper(), c.capitalize(), c[0] + c[1:].upper()}):
        for pre in ["I", "you", "SHE", "it", "x", "", " ", "1", "?"]:
            add("contractions", f"{pre}'{variant}")
            add("contractions", f"{pre}'{variant}x more")
for s in ["don't", "DON'T", "I'LL", "she'S", "we'RE", "they'VE", "I'M", "he'D", "'s", "'", "''",
          "'''s", "rock 'n' roll", "o'clock", "rock'n'roll", "’s", "it’s", "l'homme", "L'ÉTÉ",
          "'12", "'ſ", "a'ſ", "x'ſt", "'K", "''ll", "'ll've", "y'all'd've", "'s's's", " 's", "\n's"]:
    add("contractions", s)
    add("contractions", s + " " + s.upper())

# ----------------------------------------------------------------------------------------------
# Emoji and ZWJ sequences
# ----------------------------------------------------------------------------------------------
EMOJI = ["😀", "😂", "🥲", "👍", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "🇯🇵", "🇫🇷🇩🇪", "1️⃣", "#️⃣",
         "❤️", "❤", "✨", "🧑🏿‍🤝‍🧑🏻", "🐈‍⬛", "👁️‍🗨️", "🤷‍♀️", "🙋🏼‍♂️", "⌚", "☕", "🍣", "🚀", "🫠"]
for e in EMOJI:
    add("emoji", e)
    add("emoji", "I love " + e + "!")
for _ in range(100):
    s = "".join(rng.choice(EMOJI + [" ", "a", "ok", "\n", "很好", "!!"]) for _ in range(rng.randint(2, 12)))
    add("emoji_mix", s)

# ----------------------------------------------------------------------------------------------
# Combining marks and other text that NFC changes
# ----------------------------------------------------------------------------------------------
MARKS = [chr(c) for c in range(0x300, 0x370)] + ["\u0323", "\u0328", "\u031b", "\u0345", "\u05b4", "\u0651", "\u093c", "\u3099", "\u309a"]
BASES = list("aeiouAEIOUnNcCsSzZyYwWgGkK") + ["α", "ω", "Α", "и", "у", "ε", "か", "ハ", "ϒ", "ſ", "ä", "ǖ", "ｶ", "\u0915"]
for _ in range(250):
    s = ""
    for _ in range(rng.randint(1, 6)):
        s += rng.choice(BASES) + "".join(rng.choice(MARKS) for _ in range(rng.randint(0, 3)))
        if rng.random() < 0.3:
            s += rng.choice([" ", "", "\n", "x"])
    add("nfc_random", s)
NFC_CASES = [
    "e\u0301", "E\u0301cole", "A\u030a", "\u212b", "\u2126", "\u212a", "n\u0303", "a\u0323\u0302", "a\u0302\u0323",
    "\u1100\u1161", "\u1100\u1161\u11a8", "\uac00\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af",
    "\uf900", "\uf91d\uf92c", "\u0958", "\u0915\u093c", "\u0344", "\u0340\u0341", "\u0374", "\u037e", "\u0387",
    "\u1e0b\u0323", "\u1e63\u0307", "\u0071\u0307\u0323", "\u00c5", "\u0041\u030a\u0301", "\u2000", "\u2001",
    "\ufb01", "\u2460", "\u00bd", "\uff76\uff9e", "\u304b\u3099", "\u30cf\u309a", "\u0627\u0653", "\u0648\u0654",
    "\u05d1\u05bc", "\u0b47\u0b3e", "\u0b47\u0b57", "\u0dd9\u0dcf", "\u1025\u102e", "\u1b05\u1b35",
    "\u0928\u093c", "\u09c7\u09be", "\u0cc6\u0cc2\u0cd5", "\u0fb2\u0f80", "\U0001d15e", "\U0001d160",
    "\U0002f800", "\U00011099\U000110ba", "\U00011131\U00011127", "Ω\u0301", "\u03d2\u0301", "\u0419", "\u0418\u0306",
    "Cafe\u0301 au lait", "re\u0301sume\u0301 na\u0131\u0308ve", "\u0063\u0327\u0061", "Vie\u0323\u0302t Nam",
]
for s in NFC_CASES:
    add("nfc", s)
    add("nfc", "x" + s + " " + s.upper() + "\n")

# ----------------------------------------------------------------------------------------------
# Special / added tokens inside text (the contents are written out here, the ids are not)
# ----------------------------------------------------------------------------------------------
ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
         "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
         "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
         "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
         "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>"]
for t in ADDED:
    for ctx in ["{t}", "a{t}b", " {t} ", "\n{t}\n", "{t}{t}", "hello {t}world", "{t} 's", "é{t}\u0301",
                "<{t}>", "<|{t}|>", "{t}\r\n\r\n", "x\u00a0{t}\u00a0y"]:
        add("special", ctx.replace("{t}", t))
    add("special_partial", t[:-1])
    add("special_partial", t[1:])
    add("special_partial", t[:-1] + " " + t[-1])
    add("special_partial", t.upper())
for _ in range(150):
    parts = []
    for _ in range(rng.randint(2, 8)):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(ADDED))
        elif r < 0.5:
            t = rng.choice(ADDED)
            parts.append(t[: rng.randint(1, len(t) - 1)])
        else:
            parts.append(rng.choice(WORDS + WS + ["user\n", "assistant\n", "system\n"]))
    add("special_mix", "".join(parts))
for n in (1, 2, 5, 64):  # chat-formatted strings, as the chat template writes them
    add("special_chat", "<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * n +
        "<|vision_end|>Describe this image.<|im_end|>\n<|im_start|>assistant\n")
add("special_chat", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n")
add("special_chat", "<think>\nLet me think.\n</think>\n\nThe answer is 4.")

# ----------------------------------------------------------------------------------------------
# Invalid UTF-8 byte strings
# ----------------------------------------------------------------------------------------------
for b in range(0x80, 0x100):
    add("invalid_byte", bytes([b]))
INVALID = [
    b"\xc3", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x82", b"\xe2\x28\xa1", b"\xe2\x82\x28", b"\xf0\x28\x8c\xbc",
    b"\xf0\x90\x28\xbc", b"\xf0\x28\x8c\x28", b"\xf0\x9f\x98", b"\xf0\x9f", b"\xc0\xaf", b"\xe0\x80\xaf",
    b"\xf0\x80\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\x80\xed\xb0\x80", b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfe\xff", b"\xff\xfe", b"\xef\xbb\xbf", b"\xef\xbb\xbfBOM",
    b"\x80\x80\x80", b"\xc2", b"\xdf\xbf", b"\xe0\xa0", b"\xe1\x80\xe2\xf0\x91\x92\xf1\xbf\x41",
    b"\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64",
]
for b in INVALID:
    add("invalid", b)
    add("invalid", b"abc " + b + b" def")
    add("invalid", b"<|im_start|>" + b + b"<|im_end|>")
for _ in range(150):
    base = rng.choice(ALL_SENTS).encode("utf-8")
    bb = bytearray(base)
    for _ in range(rng.randint(1, 4)):
        op = rng.randint(0, 2)
        pos = rng.randint(0, len(bb))
        if op == 0:
            bb[pos:pos] = bytes([rng.randint(0x80, 0xff)])
        elif op == 1 and len(bb) > 0:
            del bb[min(pos, len(bb) - 1)]  # may cut a multi-byte character
        else:
            bb[pos:pos] = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 5)))
    add("invalid_mutated", bytes(bb))
for _ in range(80):
    add("invalid_random", bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 40))))

# ----------------------------------------------------------------------------------------------
# Random Unicode strings (assigned characters only)
# ----------------------------------------------------------------------------------------------
RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x250, 0x36F), (0x370, 0x3FF), (0x400, 0x52F), (0x530, 0x58F),
          (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0x980, 0xDFF), (0xE00, 0xEFF), (0x10A0, 0x10FF),
          (0x1100, 0x11FF), (0x1E00, 0x1FFF), (0x2000, 0x206F), (0x2070, 0x2BFF), (0x3000, 0x30FF),
          (0x3130, 0x318F), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xF900, 0xFAFF), (0xFB00, 0xFFFD),
          (0x10000, 0x1019F), (0x1D400, 0x1D7FF), (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF), (0x2F800, 0x2FA1F),
          (0xE000, 0xE0FF), (0xE0000, 0xE007F), (0xFE00, 0xFE0F)]


def assigned(cp):
    if 0xE000 <= cp <= 0xF8FF:
        return True  # private use
    return unicodedata.category(chr(cp)) not in ("Cn", "Cs")


for _ in range(250):
    s = []
    for _ in range(rng.randint(1, 24)):
        lo, hi = rng.choice(RANGES)
        while True:
            cp = rng.randint(lo, hi)
            if assigned(cp):
                break
        s.append(chr(cp))
        if rng.random() < 0.2:
            s.append(rng.choice(WS))
    add("random_unicode", "".join(s))

# ----------------------------------------------------------------------------------------------
# Single characters, controls, long inputs
# ----------------------------------------------------------------------------------------------
add("edge", "")
for c in range(0, 0x80):
    add("ascii_single", chr(c))
add("edge", "\x00")
add("edge", "a\x00b\x00\x00c")
add("edge", "\x1b[31mred\x1b[0m")
add("edge", "\ufffd")
add("edge", "\ufffd\ufffd x")
add("edge", "\uffff\ufffe")
add("edge", "\U0010fffd")
add("long", "a" * 2000)
add("long", "ab" * 700)
add("long", "9" * 800)
add("long", " " * 600 + "x")
add("long", "\n" * 500)
add("long", "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(1800)))  # one 5400-byte letter run
add("long", "".join(chr(rng.randint(0xAC00, 0xD7A3)) for _ in range(700)))
add("long", "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(3000)))
add("long", " ".join(rng.choice(ALL_SENTS) for _ in range(60)))
add("long", "\U0001F600" * 300)
add("long", "e\u0301" * 400)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus.jsonl")
with open(out, "w", encoding="ascii", newline="\n") as f:
    for i, (cat, b) in enumerate(corpus):
        f.write(json.dumps({"i": i, "cat": cat, "b64": base64.b64encode(b).decode("ascii")}) + "\n")
print(f"wrote {len(corpus)} strings, {sum(len(b) for _, b in corpus)} bytes -> {out}", file=sys.stderr)
