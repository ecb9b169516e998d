// Drives the gateway's Responses API with the official `openai` npm client (`responses.create`), unchanged apart from
// baseURL and apiKey. usage: node openai-responses.mjs BASE_URL API_KEY  (module path in OPENAI_MODULE)
const [baseURL, apiKey] = process.argv.slice(2);
const { default: OpenAI } = await import(process.env.OPENAI_MODULE);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const tools = [{ type: 'function', name: 'lookup', description: 'Looks a word up.', parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] }, strict: false }];
const out = {};

// Non-streaming with a function tool, then the tool's output chained by previous_response_id.
const first = await client.responses.create({ model: 'llama3-8b', input: 'look up gateway', tools });
const call = first.output.find(i => i.type === 'function_call');
out.callName = call?.name;
out.callArgs = call?.arguments;
const second = await client.responses.create({ model: 'llama3-8b', previous_response_id: first.id, input: [{ type: 'function_call_output', call_id: call.call_id, output: 'a gateway routes requests' }] });
out.answer = second.output_text;
out.previous = second.previous_response_id === first.id;
const got = await client.responses.retrieve(first.id);
out.retrieved = got.id === first.id;

// Streaming text: typed events.
const stream = await client.responses.create({ model: 'llama3-8b', input: 'hi', stream: true });
let text = '';
const events = new Set();
let completed = null;
for await (const ev of stream) {
  events.add(ev.type);
  if (ev.type === 'response.output_text.delta') text += ev.delta;
  if (ev.type === 'response.completed') completed = ev.response;
}
out.streamText = text;
out.streamStatus = completed?.status;
out.streamEvents = [...events].sort();

// Streaming a function call: its arguments arrive as deltas and are complete in the .done event.
const toolStream = await client.responses.create({ model: 'llama3-8b', input: 'look up x', tools, stream: true });
let argsDone = null;
let callItem = null;
for await (const ev of toolStream) {
  if (ev.type === 'response.function_call_arguments.done') argsDone = ev.arguments;
  if (ev.type === 'response.output_item.done' && ev.item.type === 'function_call') callItem = ev.item;
}
out.streamCallName = callItem?.name;
out.streamCallArgs = argsDone;
console.log(JSON.stringify(out));
