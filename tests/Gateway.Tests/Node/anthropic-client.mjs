// Drives the gateway with the official `@anthropic-ai/sdk` npm client, unchanged apart from baseURL and apiKey.
// usage: node anthropic-client.mjs BASE_URL API_KEY  (the module is imported from the path in ANTHROPIC_MODULE)
const [baseURL, apiKey] = process.argv.slice(2);
const { default: Anthropic } = await import(process.env.ANTHROPIC_MODULE);
const client = new Anthropic({ baseURL, apiKey, maxRetries: 0 });
const tools = [{ name: 'lookup', description: 'Looks a word up.', input_schema: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } }];
const out = {};

// Non-streaming with a tool: the model calls it, the client returns the result, the model answers.
const first = await client.messages.create({ model: 'llama3-8b', max_tokens: 64, tools, messages: [{ role: 'user', content: 'look up gateway' }] });
const use = first.content.find(b => b.type === 'tool_use');
out.stopReason = first.stop_reason;
out.toolName = use?.name;
out.toolInput = use?.input;
const second = await client.messages.create({
  model: 'llama3-8b', max_tokens: 64,
  messages: [
    { role: 'user', content: 'look up gateway' },
    { role: 'assistant', content: first.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'a gateway routes requests' }] },
  ],
});
out.answer = second.content.filter(b => b.type === 'text').map(b => b.text).join('');
out.inputTokens = second.usage.input_tokens;

// Streaming text through the SDK's stream helper (message_start ... message_stop).
const stream = client.messages.stream({ model: 'llama3-8b', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
let text = '';
const events = new Set();
for await (const ev of stream) { events.add(ev.type); if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text; }
const final = await stream.finalMessage();
out.streamText = text;
out.streamStop = final.stop_reason;
out.streamEvents = [...events].sort();

// Streaming a tool call: input_json_delta events assembled by the SDK into the tool_use block's input.
const toolStream = client.messages.stream({ model: 'llama3-8b', max_tokens: 64, tools, messages: [{ role: 'user', content: 'look up x' }] });
const toolFinal = await toolStream.finalMessage();
const streamedUse = toolFinal.content.find(b => b.type === 'tool_use');
out.streamToolName = streamedUse?.name;
out.streamToolInput = streamedUse?.input;
out.streamToolStop = toolFinal.stop_reason;

try {
  await new Anthropic({ baseURL, apiKey: 'sk-wrong', maxRetries: 0 }).messages.create({ model: 'llama3-8b', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] });
  out.badKey = 'accepted';
} catch (e) { out.badKey = e.status + ':' + e.error?.error?.type; }
console.log(JSON.stringify(out));
