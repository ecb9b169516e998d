using System.Diagnostics;
using System.Text.Json;
using Llm.Prompt.Tokenization;
string dir = args[0];
int bad = 0, total = 0;
foreach (var name in new[] { "cl100k_base", "r50k_base" })
{
    var sw = Stopwatch.StartNew();
    var tok = Tokenizers.Load(Path.Combine(dir, name + ".tiktoken"), new BpeOptions { Pattern = name == "r50k_base" ? BpePatterns.Gpt2 : BpePatterns.Cl100k });
    Console.WriteLine($"{name}: loaded {tok.IdCount} ids, {tok.MergeCount} implied merges in {sw.ElapsedMilliseconds} ms");
    using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, name + ".expected.json")));
    foreach (var t in doc.RootElement.GetProperty("texts").EnumerateArray())
    {
        string text = t.GetProperty("text").GetString()!;
        int[] expected = t.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var ids = new List<int>(); tok.Encode(text, ids);
        total++;
        bool ok = ids.SequenceEqual(expected) && tok.Decode(ids.ToArray()) == text;
        if (!ok) { bad++; Console.WriteLine($"  MISMATCH {name}: {text}\n   exp {string.Join(',', expected)}\n   got {string.Join(',', ids)}"); }
    }
    // throughput on ~1 MB of mixed text
    var corpus = string.Concat(Enumerable.Range(0, 2000).Select(i => doc.RootElement.GetProperty("texts")[i % 12].GetProperty("text").GetString() + $" item {i} "));
    tok.CountTokens(corpus);
    var fresh = Tokenizers.Load(Path.Combine(dir, name + ".tiktoken"));
    sw.Restart(); int n = fresh.CountTokens(corpus); double cold = sw.Elapsed.TotalMilliseconds;
    sw.Restart(); n = tok.CountTokens(corpus); double warm = sw.Elapsed.TotalMilliseconds;
    Console.WriteLine($"  {corpus.Length} chars -> {n} tokens; cold cache {cold:F0} ms ({corpus.Length / cold / 1000:F1} MB/s), warm {warm:F0} ms ({corpus.Length / warm / 1000:F1} MB/s)");
}
Console.WriteLine($"{total - bad}/{total} texts match js-tiktoken exactly");
return bad == 0 ? 0 : 1;
