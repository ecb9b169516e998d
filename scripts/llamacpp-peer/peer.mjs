// llama.cpp peer for the CPU backend (issue 10). Loads a GGUF with node-llama-cpp's prebuilt CPU binaries (no build,
// no GPU), evaluates a fixed token-id prompt, then decodes greedily and prints one JSON object on stdout:
//   { firstLogits: [vocab floats after the prompt], greedy: [token ids], teacherForced: [argmax after each forced
//     token], promptMs, decodeMs, decodeTokensPerSecond, threads, ... }
// Usage: node peer.mjs --model FILE.gguf --threads N --prompt 1,2,3 --decode 32 [--force 5,6,7]
// --force: instead of following its own greedy choice, feed these tokens (the C# side's sequence) one per step and
// report llama.cpp's argmax after each, so next-token agreement is measured step by step on the same context.
import { getLlama } from "node-llama-cpp";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
}, []));
const modelPath = args.model;
const threads = Number(args.threads ?? 1);
const prompt = String(args.prompt ?? "1").split(",").map(Number);
const decode = Number(args.decode ?? 16);
const force = args.force ? String(args.force).split(",").map(Number) : null;
if (!modelPath) { console.error("--model is required"); process.exit(2); }

const llama = await getLlama({ build: "never", gpu: false, logLevel: "error" });
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
const context = await model.createContext({
    contextSize: prompt.length + Math.max(decode, force?.length ?? 0) + 8,
    batchSize: Math.max(prompt.length, 1),
    threads: { ideal: threads, min: threads },
    sequences: 1,
    flashAttention: false,
});
const seq = context.getSequence();

const greedyNext = { token: true, options: { temperature: 0 } };
const input = prompt.map((t, i) => i === prompt.length - 1 ? [t, { generateNext: { ...greedyNext, logits: true } }] : t);
// Warm-up (page cache, thread pool, allocator), as the C# side does: prompt + 4 decode steps, then forget them.
{
    const w = await seq.controlledEvaluate(input);
    let tok = w[prompt.length - 1].next.token;
    for (let i = 0; i < 4; i++) tok = (await seq.controlledEvaluate([[tok, { generateNext: greedyNext }]]))[0].next.token;
    await seq.clearHistory();
}
// CPU time of this process (llama.cpp's threads and node's), the figure that waiting for a core does not inflate.
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
let c0 = cpuMs();
let t0 = performance.now();
const out = await seq.controlledEvaluate(input);
const promptMs = performance.now() - t0;
const promptCpuMs = cpuMs() - c0;
const last = out[prompt.length - 1].next;
const logitsMap = last.logits;
const nVocab = model.fileInfo?.metadata?.llama?.vocab_size ?? Math.max(...logitsMap.keys()) + 1;
const firstLogits = new Array(nVocab).fill(0);
for (const [tok, v] of logitsMap) firstLogits[tok] = v;

let next = last.token;
const greedy = [next];
const teacherForced = [next];
c0 = cpuMs();
t0 = performance.now();
const steps = force ? force.length : decode;
for (let i = 0; i < steps; i++) {
    const feed = force ? force[i] : next;
    const r = await seq.controlledEvaluate([[feed, { generateNext: greedyNext }]]);
    next = r[0].next.token;
    (force ? teacherForced : greedy).push(next);
}
const decodeMs = performance.now() - t0;
const decodeCpuMs = cpuMs() - c0;

process.stdout.write(JSON.stringify({
    peer: "llama.cpp via node-llama-cpp 3.22.1",
    buildType: llama.buildType, gpu: llama.gpu, threads: context.currentThreads ?? threads,
    promptTokens: prompt.length, promptMs, promptCpuMs,
    decodeSteps: steps, decodeMs, decodeTokensPerSecond: steps / (decodeMs / 1000), decodeCpuMsPerToken: decodeCpuMs / steps,
    greedy: force ? undefined : greedy,
    teacherForced: force ? teacherForced : undefined,
    firstLogits,
}) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
