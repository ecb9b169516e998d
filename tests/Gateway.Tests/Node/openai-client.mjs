// Drives the gateway with the official `openai` npm client, unchanged apart from baseURL and apiKey.
// usage: node openai-client.mjs BASE_URL API_KEY  (NODE_PATH-independent: imported from the path in OPENAI_MODULE)
const [baseURL, apiKey] = process.argv.slice(2);
const { default: OpenAI } = await import(process.env.OPENAI_MODULE);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const out = {};
const models = await client.models.list();
out.models = models.data.map(m => m.id);
const chat = await client.chat.completions.create({ model: 'llama3-8b', messages: [{ role: 'user', content: 'hi' }] });
out.chat = chat.choices[0].message.content;
out.usage = chat.usage.prompt_tokens;
const stream = await client.chat.completions.create({ model: 'llama3-8b', stream: true, messages: [{ role: 'user', content: 'hi' }] });
let text = '';
let chunks = 0;
for await (const part of stream) { chunks++; text += part.choices[0]?.delta?.content ?? ''; }
out.stream = text;
out.chunks = chunks;
try {
  await new OpenAI({ baseURL, apiKey: 'sk-wrong', maxRetries: 0 }).models.list();
  out.badKey = 'accepted';
} catch (e) { out.badKey = e.status + ':' + e.code; }
console.log(JSON.stringify(out));
