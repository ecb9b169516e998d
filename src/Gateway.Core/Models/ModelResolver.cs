using Llm.Prompt.Hashing;

namespace Gateway.Core.Models;

/// <summary>One side of a weighted split: a served model and its integer weight.</summary>
/// <param name="Model">The model (pool) this side sends to.</param>
/// <param name="Weight">Its share of the split's total weight (positive).</param>
public readonly record struct SplitSide(string Model, int Weight);

/// <summary>
/// The operator's model rules: aliases (a name clients send → another name) and weighted splits (a name → two or more
/// served models, for canaries). Per-tenant aliases are passed per request (<see cref="ModelScope"/>).
/// </summary>
public sealed class ModelRules
{
    /// <summary>Aliases for every tenant: requested name → target name (a served model, a split or another alias).</summary>
    public IReadOnlyDictionary<string, string> Aliases { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Weighted splits: name → sides. A request for the name goes to one side, the same one for a whole session.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<SplitSide>> Splits { get; init; } = new Dictionary<string, IReadOnlyList<SplitSide>>(StringComparer.Ordinal);
}

/// <summary>What one tenant brings to a resolution: its own aliases and its model allow-list.</summary>
public sealed class ModelScope
{
    /// <summary>A scope with no aliases of its own and no allow-list (every model).</summary>
    public static ModelScope Open { get; } = new();

    /// <summary>The tenant's aliases, looked up before the operator's.</summary>
    public IReadOnlyDictionary<string, string> Aliases { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Names this tenant may use (null = all). A request is allowed when it names one of them or an alias leads through one.</summary>
    public IReadOnlySet<string>? Allowed { get; init; }

    /// <summary>Whether the allow-list admits <paramref name="name"/>.</summary>
    public bool Admits(string name) => Allowed is null || Allowed.Contains(name);
}

/// <summary>How a requested model name resolved.</summary>
public enum ModelOutcome
{
    /// <summary>It leads to a served model.</summary>
    Served,

    /// <summary>Neither served nor an alias or split that leads to a served model: 404 <c>model_not_found</c>.</summary>
    NotFound,

    /// <summary>It leads to a served model the tenant may not use: 403 <c>model_not_allowed</c>.</summary>
    NotAllowed,
}

/// <summary>The result of <see cref="IModelResolver.Resolve"/>.</summary>
/// <param name="Outcome">Served, not found or not allowed.</param>
/// <param name="Model">The served model to route to (its pool's workers only); the requested name otherwise.</param>
/// <param name="Split">The split the request went through, or null.</param>
public readonly record struct ModelResolution(ModelOutcome Outcome, string Model, string? Split = null);

/// <summary>Maps the model name a client sends to the served model (the pool of workers) that answers it.</summary>
public interface IModelResolver
{
    /// <summary>
    /// Resolves <paramref name="requested"/> for a tenant. <paramref name="stickyKey"/> places the request on one side of
    /// a split (a session's hash keeps every turn of a session on the same side); <paramref name="isServed"/> says whether
    /// some worker serves a model.
    /// </summary>
    ModelResolution Resolve(string requested, ModelScope scope, ulong stickyKey, Func<string, bool> isServed);

    /// <summary>The names a tenant may send: the served models it may use, then the aliases and splits that resolve for it, sorted.</summary>
    IReadOnlyList<string> Visible(ModelScope scope, IEnumerable<string> served, Func<string, bool> isServed);
}

/// <summary>
/// Aliases then splits, in that order, up to <see cref="MaxHops"/> steps: at each step the tenant's alias wins over the
/// operator's, an alias replaces the name, a split picks one side by <c>stickyKey</c> (XXH64-mixed, modulo the total
/// weight; sides whose model nobody serves are skipped, so a split whose canary pool is gone sends everything to the
/// other side). A name that is served and is not itself aliased ends the walk. The tenant's allow-list is checked
/// against every name on the way before the split (the requested name or an alias target), never against the side a
/// split picked: a key allowed <c>llama3-8b</c> keeps using it while the operator canaries <c>llama3-8b</c> onto
/// another pool.
/// </summary>
public sealed class ModelResolver(ModelRules rules) : IModelResolver
{
    /// <summary>Most alias/split steps followed (a cycle or a longer chain resolves to not found).</summary>
    public const int MaxHops = 8;

    /// <inheritdoc />
    public ModelResolution Resolve(string requested, ModelScope scope, ulong stickyKey, Func<string, bool> isServed)
    {
        string name = requested;
        bool allowed = scope.Admits(name);
        string? split = null;
        for (int hop = 0; hop <= MaxHops; hop++)
        {
            if (scope.Aliases.TryGetValue(name, out var target) || rules.Aliases.TryGetValue(name, out target))
            {
                name = target;
                allowed |= split is null && scope.Admits(name);
                continue;
            }

            if (rules.Splits.TryGetValue(name, out var sides))
            {
                split ??= name;
                if (Pick(sides, stickyKey, isServed) is not { } side)
                {
                    return new ModelResolution(ModelOutcome.NotFound, requested);
                }

                if (string.Equals(side, name, StringComparison.Ordinal))
                {
                    // A split may keep a share on its own name (the stable pool): served as is, not split again.
                    return isServed(name) ? new ModelResolution(allowed ? ModelOutcome.Served : ModelOutcome.NotAllowed, name, split) : new ModelResolution(ModelOutcome.NotFound, requested);
                }

                name = side;
                continue;
            }

            if (!isServed(name))
            {
                return new ModelResolution(ModelOutcome.NotFound, requested);
            }

            return new ModelResolution(allowed ? ModelOutcome.Served : ModelOutcome.NotAllowed, allowed ? name : requested, split);
        }

        return new ModelResolution(ModelOutcome.NotFound, requested);
    }

    /// <inheritdoc />
    public IReadOnlyList<string> Visible(ModelScope scope, IEnumerable<string> served, Func<string, bool> isServed)
    {
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var m in served)
        {
            if (scope.Admits(m))
            {
                names.Add(m);
            }
        }

        void Consider(string name)
        {
            // A split skips sides nobody serves, so any key (0 here) lands on a served side when one exists.
            if (Resolve(name, scope, 0, isServed).Outcome == ModelOutcome.Served)
            {
                names.Add(name);
            }
        }

        foreach (var a in scope.Aliases.Keys)
        {
            Consider(a);
        }

        foreach (var a in rules.Aliases.Keys)
        {
            Consider(a);
        }

        foreach (var s in rules.Splits.Keys)
        {
            Consider(s);
        }

        return [.. names];
    }

    /// <summary>The side of <paramref name="sides"/> that <paramref name="stickyKey"/> falls on, among the served ones.</summary>
    internal static string? Pick(IReadOnlyList<SplitSide> sides, ulong stickyKey, Func<string, bool> isServed)
    {
        long total = 0;
        foreach (var s in sides)
        {
            if (s.Weight > 0 && isServed(s.Model))
            {
                total += s.Weight;
            }
        }

        if (total == 0)
        {
            return null;
        }

        // Mix the key first: session hashes are uniform already, request counters are not.
        long bucket = (long)(Mix(stickyKey) % (ulong)total);
        foreach (var s in sides)
        {
            if (s.Weight > 0 && isServed(s.Model))
            {
                bucket -= s.Weight;
                if (bucket < 0)
                {
                    return s.Model;
                }
            }
        }

        return null;
    }

    /// <summary>The key a request is split by: its (tenant-scoped) session when it has one, else its own id.</summary>
    public static ulong StickyKey(string? sessionId, long requestId) =>
        sessionId is not null ? TextHash.Utf8XxHash64(sessionId, 0x5B117UL) : (ulong)requestId;

    private static ulong Mix(ulong x)
    {
        // splitmix64 finaliser
        x ^= x >> 30;
        x *= 0xBF58476D1CE4E5B9UL;
        x ^= x >> 27;
        x *= 0x94D049BB133111EBUL;
        x ^= x >> 31;
        return x;
    }
}
