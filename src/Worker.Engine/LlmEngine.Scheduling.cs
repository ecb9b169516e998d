namespace Worker.Engine;

/// <summary>
/// One step's plan: running and waiting sequences merged in priority order under the token budget, admission of the
/// waiting head, preemption by recompute when KV is short, and the urgency rules that keep urgent prefills' steps short
/// (see the class summary in LlmEngine.cs).
/// </summary>
public sealed partial class LlmEngine
{
    /// <summary>
    /// Fills <see cref="_plan"/>; returns the number of sequences preempted. Sequences are taken in priority order: running
    /// ones (kept sorted by priority, then admission) and the waiting queue's head merge, so a waiting sequence of higher
    /// priority is admitted before lower-priority running sequences take budget (equal priorities: running first).
    /// </summary>
    private int Plan()
    {
        _plan.Clear();
        int budget = Options.MaxBatchTokens;
        int preempted = 0;
        int preemptedTop = int.MinValue; // highest priority preempted this step: only higher ones may still be admitted
        int prefillFloor = int.MinValue; // with ExclusivePriorityPrefill: lower priorities get no prefill tokens
        int cap = Options.LongPrefillTokenThreshold > 0 ? Options.LongPrefillTokenThreshold : int.MaxValue;
        int urgent = UrgentPriority(); // prefills below it share LowPriorityPrefillTokens per step
        int lowPrefill = Options.LowPriorityPrefillTokens;
        bool capped = false;
        bool admitting = true;
        int serial = int.MinValue; // with SerialUrgentPrefill: the priority of the urgent prefill that has this step
        bool serialOn = Options.SerialUrgentPrefill;
        int i = 0;
        while (budget > 0)
        {
            var run = i < _running.Count ? _running[i] : null;
            var wait = admitting && _waiting.Count > 0 ? _waiting.Min : null;
            if (wait is not null && (run is null || wait.Request.Priority > run.Request.Priority))
            {
                // 2. Admission: the waiting head goes before every running sequence of lower priority.
                bool low = wait.Request.Priority < urgent;
                if ((preempted > 0 && wait.Request.Priority <= preemptedTop) || wait.Request.Priority < prefillFloor
                    || (low && lowPrefill <= 0) || (wait.Request.Priority > 0 && wait.Request.Priority <= serial)
                    || !TryAdmit(wait, i, ref budget, ref capped, ref preempted, ref preemptedTop, low ? Math.Min(cap, lowPrefill) : cap, out int admitted))
                {
                    admitting = false; // the head blocks the rest (no skipping)
                    continue;
                }

                if (low)
                {
                    lowPrefill -= admitted;
                }
                else if (serialOn && wait.Request.Priority > 0)
                {
                    serial = wait.Request.Priority;
                }

                if (Options.ExclusivePriorityPrefill)
                {
                    prefillFloor = Math.Max(prefillFloor, wait.Request.Priority);
                }

                i++;
                continue;
            }

            if (run is null)
            {
                break;
            }

            // 1. A running sequence: min(tokens left, cap, budget); a decode is one token.
            int left = run.Tokens - run.Computed;
            bool decode = run.Emitted > 0 && left == 1;
            if (!decode && run.Request.Priority < prefillFloor)
            {
                i++; // a higher-priority prefill has this step to itself (decodes still ride along)
                continue;
            }

            if (!decode && run.Request.Priority > 0 && run.Request.Priority <= serial)
            {
                i++; // another urgent prefill has this step (SerialUrgentPrefill)
                continue;
            }

            bool lowRun = !decode && run.Request.Priority < urgent;
            if (lowRun && lowPrefill <= 0)
            {
                i++; // the step's low-priority prefill tokens are used up (keeps the step short for urgent arrivals)
                continue;
            }

            int n = Math.Min(Math.Min(left, lowRun ? Math.Min(cap, lowPrefill) : cap), decode ? budget : PrefillBudget(budget, i + 1, run.Request.Priority));
            int need = (int)BlocksFor(run.Computed + n) - run.BlockTable.Count;
            bool selfPreempted = false;
            while (!_blocks.TryAllocate(need, run.BlockTable))
            {
                // KV is short: preempt by recompute the lowest-priority, most recently admitted running sequence
                // (the list's tail; vLLM's priority policy), possibly this one.
                var victim = _running[^1];
                _running.RemoveAt(_running.Count - 1);
                Preempt(victim);
                preempted++;
                preemptedTop = Math.Max(preemptedTop, victim.Request.Priority);
                if (ReferenceEquals(victim, run))
                {
                    selfPreempted = true;
                    break;
                }
            }

            if (selfPreempted)
            {
                break;
            }

            capped |= n == cap && left > cap;
            Schedule(run, n);
            budget -= n;
            if (lowRun)
            {
                lowPrefill -= n;
            }
            else if (serialOn && !decode && run.Request.Priority > 0)
            {
                serial = run.Request.Priority;
            }

            if (!decode && Options.ExclusivePriorityPrefill)
            {
                prefillFloor = Math.Max(prefillFloor, run.Request.Priority);
            }

            i++;
        }

        // 3. Budget nobody else wanted goes back to the capped prefills, in plan order (no preemption for it).
        for (int c = 0; capped && budget > 0 && c < _plan.Chunks.Count; c++)
        {
            var seq = _plan.SequenceAt(c);
            var chunk = _plan.Chunks[c];
            int extra = Math.Min(seq.Tokens - chunk.ContextTokens - chunk.NewTokens, budget);
            if (seq.Request.Priority < urgent)
            {
                extra = Math.Min(extra, lowPrefill);
            }

            if (extra <= 0 || chunk.IsDecode || seq.Request.Priority < prefillFloor)
            {
                continue;
            }

            int need = (int)BlocksFor(chunk.ContextTokens + chunk.NewTokens + extra) - seq.BlockTable.Count;
            if (_blocks.TryAllocate(need, seq.BlockTable))
            {
                _plan.Extend(c, extra, chunk.ContextTokens + chunk.NewTokens + extra == seq.Tokens);
                budget -= extra;
                if (seq.Request.Priority < urgent)
                {
                    lowPrefill -= extra;
                }
            }
        }

        return preempted;
    }

    /// <summary>
    /// Admits the waiting queue's head at running position <paramref name="at"/> (every running sequence from there on has
    /// a lower priority and is not planned yet) if the running cap and KV blocks for its prefix hit plus the next chunk
    /// allow, preempting running sequences of lower priority by recompute (lowest first) to make room. False: it stays
    /// waiting and nothing changed but the preemptions.
    /// </summary>
    private bool TryAdmit(Sequence seq, int at, ref int budget, ref bool capped, ref int preempted, ref int preemptedTop, int cap, out int scheduled)
    {
        scheduled = 0;
        int priority = seq.Request.Priority;
        bool CanEvict() => _running.Count > at && _running[^1].Request.Priority < priority;
        void Evict(ref int preempted, ref int preemptedTop)
        {
            var victim = _running[^1];
            _running.RemoveAt(_running.Count - 1);
            Preempt(victim);
            preempted++;
            preemptedTop = Math.Max(preemptedTop, victim.Request.Priority);
        }

        while (_running.Count >= Options.MaxRunningSequences)
        {
            if (!CanEvict())
            {
                return false;
            }

            Evict(ref preempted, ref preemptedTop);
        }

        int hitBlocks = 0;
        if (seq.BlockTable.Count == 0)
        {
            // At least one token must be computed to produce logits, so a fully cached prompt recomputes its last block.
            int maxHit = (seq.Tokens - 1) / _blockSize;
            hitBlocks = _blocks.AcquireTieredPrefix(seq.Request.BlockHashes, maxHit, seq.BlockTable, out int reloaded, out long readyAt);
            seq.Computed = hitBlocks * _blockSize;
            seq.PendingReloadTokens += reloaded * _blockSize;
            seq.ReloadedTokens = reloaded * _blockSize;
            seq.ReadyAtTicks = readyAt;
        }

        int left = seq.Tokens - seq.Computed;
        int n = Math.Min(Math.Min(left, cap), PrefillBudget(budget, at, priority));
        int need = (int)BlocksFor(seq.Computed + n) - seq.BlockTable.Count;
        while (!_blocks.TryAllocate(need, seq.BlockTable))
        {
            if (!CanEvict())
            {
                _blocks.Free(seq.BlockTable);
                seq.Computed = 0;
                return false;
            }

            Evict(ref preempted, ref preemptedTop);
        }

        _waiting.Remove(seq);
        _waitingTokens -= seq.Tokens;
        if (!seq.Admitted)
        {
            seq.Admitted = true;
            seq.CachedTokens = hitBlocks * _blockSize;
            seq.FirstReloadedTokens = seq.ReloadedTokens;
            _queryTokens += seq.Request.PromptTokens;
            _hitTokens += seq.CachedTokens;
            _hostHitTokens += seq.ReloadedTokens;
            _blocks.ShadowAdmitted(seq.Request.BlockHashes, (seq.Tokens - 1) / _blockSize, hitBlocks);
        }

        _stepReloadTokens += seq.PendingReloadTokens;
        seq.PendingReloadTokens = 0;
        _stepReadyAt = Math.Max(_stepReadyAt, seq.ReadyAtTicks);

        seq.Running = true;
        _running.Insert(at, seq);
        Schedule(seq, n);
        capped |= n == cap && left > cap;
        budget -= n;
        scheduled = n;
        return true;
    }

    private void RememberUrgency(int priority)
    {
        if (priority <= 0 || Options.LowPriorityPrefillTokens <= 0)
        {
            return;
        }

        long now = Time.GetUtcNow().UtcTicks;
        long until = now + (long)(Options.UrgentMemorySeconds * TimeSpan.TicksPerSecond);
        if (priority >= _urgentPriority || now >= _urgentUntil)
        {
            _urgentPriority = priority;
            _urgentUntil = until;
        }
    }

    /// <summary>
    /// Priority below which prefills share <see cref="EngineOptions.LowPriorityPrefillTokens"/> this step: the highest
    /// priority submitted within <see cref="EngineOptions.UrgentMemorySeconds"/>; <see cref="int.MinValue"/> (no limit)
    /// when none was, or the option is off.
    /// </summary>
    private int UrgentPriority()
    {
        if (_urgentPriority == int.MinValue)
        {
            return int.MinValue;
        }

        if (Time.GetUtcNow().UtcTicks >= _urgentUntil)
        {
            _urgentPriority = int.MinValue;
        }

        return _urgentPriority;
    }

    /// <summary>
    /// Budget a prefill of <paramref name="priority"/> may take: what is left minus one token for every decoding sequence of
    /// lower priority still to be planned (from running position <paramref name="from"/>), so urgent prefills never starve
    /// decodes (at least one token).
    /// </summary>
    private int PrefillBudget(int budget, int from, int priority)
    {
        if (_running.Count == 0 || _running[^1].Request.Priority >= priority)
        {
            return budget; // sorted: nothing of lower priority runs
        }

        int decodes = 0;
        for (int k = from; k < _running.Count; k++)
        {
            var r = _running[k];
            if (r.Request.Priority < priority && r.Emitted > 0 && r.Tokens - r.Computed == 1)
            {
                decodes++;
            }
        }

        return Math.Max(1, budget - decodes);
    }

    private void Schedule(Sequence seq, int n)
    {
        bool decode = seq.Emitted > 0 && seq.Tokens - seq.Computed == 1;
        bool logits = seq.Computed + n == seq.Tokens;
        _plan.Add(new ScheduledChunk(seq.Request.Id, n, seq.Computed, decode, logits), seq);
    }

    private void Preempt(Sequence seq)
    {
        _blocks.Free(seq.BlockTable);
        seq.Computed = 0;
        seq.Running = false;
        _waiting.Add(seq);
        _waitingTokens += seq.Tokens;
        _preemptions++;
    }
}
