#!/usr/bin/env python3
"""Writes tests/data/tokenizer/corpus.txt: the tokenizer test corpus (deterministic).

One string per line, escaped: backslash -> \\\\, newline -> \\n, CR -> \\r, tab -> \\t, other
control bytes -> \\xHH. The empty line is the empty string. Strings are valid UTF-8 without NUL
(they travel as C strings).
"""
import pathlib
import random

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/data/tokenizer/corpus.txt"

english = [
    "Hello world", " Hello world", "Hello World", " Hello World!", "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll like it; they've said it's what we'd want.",
    "DON'T SHOUT! I'M LISTENING. WE'LL SEE, THEY'RE HERE, YOU'VE WON, HE'D GO.",
    "What's the capital of France? It's Paris.",
    "A large language model predicts the next token given the previous ones.",
    "She sells sea shells by the sea shore.",
    "To be, or not to be, that is the question.",
    "It was the best of times, it was the worst of times.",
    "Please summarize the following paragraph in two sentences.",
    "Once upon a time, in a land far, far away, there lived a small dragon.",
    "e-mail: someone@example.com, web: https://example.org/path?q=1&r=two#frag",
    "The price is $19.99 (tax included) — a 15% discount!",
    "Mr. and Mrs. Dursley, of number four, Privet Drive, were proud to say...",
    "“Smart quotes” and ‘single ones’ aren't the same as \"straight\" ones.",
    "well...   this is   odd", "ALL CAPS SENTENCE", "mIxEd CaSe WoRdS",
    "antidisestablishmentarianism", "supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "a", "I", " a", "  a", "a ", "ab", "abc", "the", " the", "The", "THE",
    "Q: What is 2+2?\nA: 4.", "Item 1\nItem 2\nItem 3\n",
    "First line.\n\nSecond paragraph after a blank line.",
    "Tabs\tbetween\twords", "Trailing spaces   ", "   Leading spaces",
    "Hyphen-ated and under_scored and camelCase and PascalCase and snake_case_words",
    "rock'n'roll", "'quoted'", "''", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d",
    "it's", "It'S", "IT'S", "you're", "YOU'RE", "we've", "I'd", "they'll",
    "o'clock", "ma'am", "y'all", "'twas", "rock ' n ' roll",
    "Dr. Smith's 3rd patient's X-ray.", "U.S.A. vs U.K.",
    "Knowledge is power. France is bacon.",
    "The year 1999 was followed by 2000, then 2001.",
    "Room 101, floor 7, building 42B.",
    "The answer is 42.", "e = mc^2", "3.14159265358979",
    "Multiple!!! Question??? Marks?!?!", "Ellipsis… and dashes – — -",
    "Parentheses (like these) [and these] {and these} <and these>",
    "#hashtag @mention $cashtag %percent ^caret &ampersand *star",
    "Numbers1234Mixed5678With9Letters",
    "Goodbye, cruel world.\n",
]

other_scripts = [
    "Bonjour, comment ça va ? Très bien, merci.",
    "Élève, où êtes-vous ? Ça dépend.",
    "Grüß Gott! Schöne Grüße aus München. Straße, Fußgänger.",
    "¿Dónde está la biblioteca? ¡Aquí!",
    "Ação, coração, informação — português.",
    "Привет, как дела? Всё хорошо.",
    "нещо на Български",
    "Γειά σου Κόσμε! Καλημέρα.",
    "مرحبا بالعالم! كيف حالك؟",
    "שלום עולם! מה שלומך?",
    "नमस्ते दुनिया! आप कैसे हैं?",
    "হ্যালো বিশ্ব", "வணக்கம் உலகம்", "สวัสดีชาวโลก ภาษาไทย",
    "你好，世界！今天天气很好。",
    "我想在apple工作1314151天～",
    "中文字符和English混合123测试",
    "こんにちは世界！カタカナとひらがな、漢字。",
    "東京都渋谷区 2024年1月1日",
    "안녕하세요 세계! 한국어 텍스트입니다.",
    "Xin chào thế giới! Tiếng Việt có dấu.",
    "Merhaba dünya! İstanbul'da ığdır şğü.",
    "გამარჯობა მსოფლიო", "Բարեւ աշխարհ", "ሰላም ለዓለም", "ආයුබෝවන් ලෝකය",
    "កាន់តែពិសេសអាចខលចេញ",
    "Cześć świecie! Zażółć gęślą jaźń.",
    "Ahoj světe! Příliš žluťoučký kůň.",
    "Hej världen! Blåbärsöl och smörgås.",
    "Здравей свят. Україна — Київ, Львів, Їжак.",
    "Ωμέγα αλφα βήτα γάμμα δέλτα",
    "ﬁ ﬂ ﬀ ligatures and ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "Ⅻ Ⅳ ⅷ roman numerals, ½ ¾ ⅓ fractions, ² ³ superscripts, ①②③",
    "e\u0301 vs é (combining acute vs precomposed)",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333",
    "zero\u200bwidth\u200cjoiners\u200dhere\ufeffBOM",
    "Right\u200fto\u200eleft marks",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝐛𝐨𝐥𝐝 𝑖𝑡𝑎𝑙𝑖𝑐",
    "Ancient: 𐌰𐌱𐌲 𓀀𓀁 𒀀",
]

emoji = [
    "🙂", "😀😃😄", " 🚀", "🦙.cpp", " this is 🦙.cpp",
    "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ (only emoji that has its own token)",
    "👨‍👩‍👧‍👦 family", "👍🏻👍🏼👍🏽👍🏾👍🏿", "🇫🇷🇯🇵🇺🇸 flags", "🏳️‍🌈 🏴‍☠️",
    "❤️ vs ❤ vs ♥", "I ❤️ NY", "🫠🫡🫢 newer emoji", "🫨 shaking face (Unicode 15)",
    "🤖 says: beep boop 🤖🤖🤖", "Hello 😁 ?", "😂😂😂😂😂😂😂😂😂😂",
    "⌚⌛⏰ ☀️☁️☂️ ⚡❄️", "👩🏽‍💻 coding at 3am ☕", "🧑‍🚀 astronaut", "🐍 Python 🦀 Rust",
    "🎉🎊🥳 party!", "emoji👋in👋the👋middle", "🔥" * 20, "©®™ ℃ ℉ № ℗",
]

code = [
    "def hello():\n    print(\"Hello, world!\")\n",
    "for i in range(10):\n\tif i % 2 == 0:\n\t\tprint(i)",
    "int main(void) {\n    return 0;\n}\n",
    "#include <stdio.h>\nint main(){printf(\"%d\\n\", 42);}",
    "fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}",
    "impl<T: Clone> Foo<T> where T: Default { fn bar(&self) -> Option<&T> { None } }",
    "const x = (a, b) => a ?? b; let y = x?.z ?? [];",
    "function f() { return {a: 1, 'b': [2, 3], \"c\": null}; }",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "{\"name\": \"qorus\", \"version\": \"0.1.0\", \"list\": [1, 2.5, true, null]}",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "$ cargo build --release && ./target/release/qorus --help",
    "git commit -m \"Fix: off-by-one in tokenizer\"",
    "x = [i**2 for i in range(100) if i % 3 == 0]",
    "if (a && b || !c) { x += 1; } else { x -= 1; }",
    "a<<=2; b>>=3; c|=d; e^=f; g&=~h;",
    "    indented with four spaces\n        and eight",
    "\t\ttwo tabs\n\t\t\tthree tabs",
    "/* block comment */ // line comment\n# shell comment",
    "@decorator\nclass A(B, metaclass=M):\n    pass",
    "printf(\"%s: %5.2f%%\\n\", name, pct);",
    "regex: ^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}$",
    "path/to/file.rs:123:45: error[E0308]: mismatched types",
    "C:\\Users\\name\\Documents\\file.txt",
    "0x1F600 0xdeadbeef 0b1010 0o755 1e-10 6.02e23",
    "let s = r#\"raw string with \"quotes\"\"#;",
    "```python\nprint('hi')\n```",
    "| col1 | col2 |\n|------|------|\n| a    | b    |",
    "- [ ] todo\n- [x] done\n* bullet\n1. numbered",
    "<|fim_prefix|>def f():<|fim_suffix|>\n    return 1<|fim_middle|>",
    "if __name__ == \"__main__\":\n    main()",
    "std::vector<std::string> v{\"a\", \"b\"};",
    "echo $HOME && ls -la | grep '.rs$' > out.txt 2>&1",
    "key1=value1;key2=value2&key3=value%203",
    "λx.λy.x y — (\\x -> x + 1) <$> Just 2",
    "{{ message.content }}{% if loop.last %}<|im_end|>{% endif %}",
    "=====>>>>>-----<<<<<=====",
    "...,,,;;;:::!!!???",
    "a_b_c__d___e____f",
    "x\t=\t1\r\ny\t=\t2\r\n",
]

digits = [
    "3", "33", "333", "3333", "33333", "333333", "3333333", "33333333", "333333333",
    "0", "00", "000", "007", "1234567890", "12345678901234567890",
    "3.14", "1,000,000", "1.000.000,50", "-42", "+1 (555) 123-4567",
    "2024-01-15T10:30:00Z", "192.168.0.1", "v1.2.3-beta.4", "4K 8K 1080p 720p",
    "١٢٣٤٥ arabic-indic", "१२३ devanagari", "一二三 四五六", "Ⅷ 8 ⅷ",
    "1st 2nd 3rd 4th 21st 22nd", "w048 7tuijk dsdfhu", "0.1 + 0.2 = 0.30000000000000004",
    "3 33 333 3333", " 1 2 3", "a1b2c3d4e5",
]

whitespace = [
    "", " ", "  ", "   ", "    ", "        ", "\t", "\t\t", "\n", "\n\n", "\n\n\n",
    "\t\n", " \n", "\n ", " \n ", "\r\n", "\r\n\r\n", "\r", " \t \n ",
    "    Hello", "    Hello\n    Hello", "Hello\n", "\nHello", " (", "\n =", "' era",
    "word  word   word    word", "a \u00a0b", "a\u3000b", "a\u2003b\u2009c",
    "line1\nline2\r\nline3\rline4", "trailing newline\n\n\n", "   \n\t\n   x",
    "\x0b vertical tab and \x0c form feed", "a\u0085b next-line", "   ",
]

specials = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\nThe capital of France is Paris.<|im_end|>\n",
    "text<|endoftext|>more text", " <|im_start|> spaced <|im_end|> ",
    "<|im_start|><|im_end|><|im_start|>", "<|im_start", "im_start|>", "<|im_start|",
    "<|IM_START|>", "< |im_start| >", "<<|im_start|>>", "<|im_start|>>",
    "<repo_name>qorus<file_sep>src/lib.rs", "<filename>main.py\n<gh_stars>100",
    "<jupyter_start><jupyter_text>hi<jupyter_code>print(1)<jupyter_output>1",
    "<issue_start>bug<issue_comment>fixed<issue_closed>", "<empty_output>",
    "<s> and </s> are not special here", "[INST] hello [/INST]", "<|user|>hi<|end|>",
    "<|endoftext|><|endoftext|>", "end.<|im_end|>",
]

misc = [
    "https://github.com/ggml-org/llama.cpp/blob/master/README.md",
    "mailto:a.b+c@d-e.co.uk", "user@host:~/src$ make -j8",
    "**bold** _italic_ `code` ~~strike~~ [link](http://x.y)",
    "# Heading\n## Sub-heading\n> quote", "---\ntitle: x\n---",
    "Ünïcödé ünd ÄÖÜ äöü ß", "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞß",
    "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿ", "¡¢£¤¥¦§¨©ª«¬®¯°±²³´µ¶·¸¹º»¼½¾¿",
    "\x01\x02\x03 control \x1b[31mred\x1b[0m \x7f",
    "ĀāĂăĄąĆćĈĉĊċČčĎď", "ĠĊ these look like GPT-2 byte chars",
    "ø ö ú ÿ õ", "a\u00adb soft hyphen", "«guillemets» „Anführung“ ‚einfach‘",
]

def words_pool():
    pool = []
    for s in english + other_scripts + code + misc:
        pool.extend(s.split())
    return pool

def generated():
    rng = random.Random(20240101)
    pool = words_pool()
    chars = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
             "  \t\n.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`éüñçøßжщλπ中文日本한국🙂🚀✅“”’…—")
    out = []
    for _ in range(40):
        n = rng.randint(1, 12)
        out.append(" ".join(rng.choice(pool) for _ in range(n)))
    for _ in range(30):
        n = rng.randint(1, 40)
        out.append("".join(rng.choice(chars) for _ in range(n)))
    return out

def long_text():
    paras = [
        "Tokenizers turn text into integers. A byte-level BPE tokenizer first splits the text "
        "into words with a regular expression, maps every byte to a printable character, and "
        "then merges adjacent symbols by rank until no merge applies.",
        "Les modèles de langue lisent des jetons, pas des lettres : « tokenisation » est donc "
        "la première étape. Ça marche aussi pour l'allemand (Größe) et l'espagnol (año).",
        "def tokenize(text):\n    words = pre_split(text)\n    return [tok for w in words for tok in bpe(w)]\n",
        "数字和中文混合：2024年有366天，第1季度有91天。日本語も少し：東京タワーは333メートル。",
        "Emoji break many things 🤯: 👩‍👩‍👧 is one grapheme but several code points; 🇪🇺 is two.",
        "   Indented   text\twith\ttabs   and  double  spaces.  \n\n\nThree blank lines above.\r\n",
        "<|im_start|>user\nCan you count to ten?<|im_end|>\n<|im_start|>assistant\n1, 2, 3, 4, 5, 6, 7, 8, 9, 10.<|im_end|>\n",
        "Numbers: 3.14159, 2.71828, 1.41421, 1,234,567.89, 0xFF, 1e6, -273.15°C, 100%.",
    ]
    rng = random.Random(7)
    s = ""
    while len(s.encode()) < 10000:
        s += rng.choice(paras) + "\n\n"
    b = s.encode()[:10240]
    return b.decode("utf-8", errors="ignore")

def escape(s: str) -> str:
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o == 0x7f:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    return "".join(out)

def main():
    items = english + other_scripts + emoji + code + digits + whitespace + specials + misc
    items += generated()
    items.append(long_text())
    seen = set()
    uniq = []
    for s in items:
        assert "\0" not in s
        if s not in seen:
            seen.add(s)
            uniq.append(s)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        for s in uniq:
            f.write(escape(s) + "\n")
    print(f"{len(uniq)} strings -> {OUT}")

if __name__ == "__main__":
    main()
