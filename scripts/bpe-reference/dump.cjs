const fs = require('fs');
const { Tiktoken } = require('js-tiktoken/lite');
const texts = [
  "Hello world! This is a test of the cl100k tokenizer.",
  "The gateway sits between applications and a fleet of inference workers. For every request it decides who is served next and where.",
  "  leading spaces, trailing   \n\n\tTabs and\r\nCRLF lines\n",
  "Numbers: 1234567890 3.14159 1,000,000 and 2026-11-22T02:15:11Z",
  "Ünïcödé: naïve café, Straße, 東京都, 서울, Ελληνικά, русский язык",
  "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷 keycap 1️⃣",
  "code: if (x != null) { return x?.Value ?? 0; } // done\nfor (int i = 0; i < n; i++) { sum += a[i]; }",
  "I'm sure they'll say it's what we've done, WE'VE DONE, they'RE here'd",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}",
  "https://example.com/path?query=value&other=123#fragment",
  "ThisIsAVeryLongCamelCaseIdentifierWithoutSpacesThatGoesOnAndOnAndOnAndOn_and_snake_case_too",
];
for (const name of ['cl100k_base', 'r50k_base']) {
  const ranks = require(`js-tiktoken/ranks/${name}`);
  const lines = [];
  for (const x of ranks.bpe_ranks.split("\n").filter(Boolean)) {
    const [_, offsetStr, ...tokens] = x.split(" ");
    const offset = parseInt(offsetStr, 10);
    tokens.forEach((t, i) => lines.push(`${t} ${offset + i}`));
  }
  fs.writeFileSync(`${name}.tiktoken`, lines.join("\n") + "\n");
  const enc = new Tiktoken(ranks);
  fs.writeFileSync(`${name}.expected.json`, JSON.stringify({ pat: ranks.pat_str, texts: texts.map(t => ({ text: t, ids: enc.encode(t) })) }));
  console.log(name, lines.length, ranks.pat_str);
}
