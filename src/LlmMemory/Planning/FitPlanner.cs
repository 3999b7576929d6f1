using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Planning;

/// <summary>
/// Turns an estimate into decisions: how long a context or how large a batch fits on a GPU, which format or change
/// makes a scenario fit, how many GPUs it needs. Every answer comes from <see cref="MemoryEstimator.Estimate(ResolvedModel, Scenario, CancellationToken)"/>
/// and the same fit rule (<see cref="MemoryEstimate.Fits"/>): an answer fits and one more does not.
/// </summary>
public static class FitPlanner
{
    /// <summary>Largest batch tried: 2^20 sequences, the scenario format's bound on counts (far above any micro-batch).</summary>
    public const int MaxBatch = 1 << 20;

    /// <summary>Largest sequence tried: <see cref="Limits.MaxPositions"/> (2^28 tokens, above every published context).</summary>
    public const int MaxSeq = Limits.MaxPositions;

    /// <summary>
    /// The default target effective batch: 16 sequences per optimizer step. The essay tunes the effective batch into the
    /// 4–16 range; the top of that range is the most data per update it recommends, and a smaller target is one flag away
    /// (<c>--target-batch</c>).
    /// </summary>
    public const int DefaultTargetBatch = 16;

    /// <summary>Plans for a resolved model (the host resolves it once: catalog, files, Hub).</summary>
    /// <exception cref="FormatException">No GPU, one without a known memory size, or a bad scenario.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (checked by every estimate).</exception>
    public static FitPlan Plan(ResolvedModel model, Scenario scenario, int targetBatch = DefaultTargetBatch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenario);
        Gpu gpu = scenario.Gpu ?? throw new FormatException("Planning needs a GPU: add --gpu ID (llm-memory gpus lists them).");
        ByteSize budget = gpu.Budget
            ?? throw new FormatException($"'{gpu.Id}' has no fixed memory size in the catalog, so nothing can be solved against it; pick a GPU or an apple-m-* size.");
        if (targetBatch < 1)
        {
            throw new FormatException($"--target-batch must be at least 1, got {targetBatch}.");
        }

        (MemoryEstimate? asGiven, string? refusal) = AsGiven(model, scenario, cancellationToken);
        using var solving = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var probe = new FitProbe(model, solving.Token);
        bool serving = !scenario.IsTraining && scenario.Engine is Engine.Vllm or Engine.Sglang && model.Architecture is not null;
        bool training = scenario.IsTraining;
        bool fits = asGiven?.Fits == true;

        // The questions below do not depend on each other, so they run side by side: a fit is its longest search, not
        // the sum of its searches. Each is a pure function of the scenario (the estimate cache makes a question asked by
        // two of them once), so the answers are those of asking them one after another; the first failure cancels the rest.
        var seqNotes = new List<string>();
        var batchNotes = new List<string>();
        Task<SolvedValue>? maxSeqTask = serving ? null
            : Solver(solving, () => Solve(probe, n => scenario with { Seq = n }, MaxSeq, "sequence length", budget, seqNotes));
        Task<ServingCapacity?> capacityTask = Solver(solving, () => training || model.Architecture is null ? null : Serve(probe, scenario));
        Task<SolvedValue>? maxBatchTask = serving ? null
            : Solver(solving, () => Solve(probe, n => scenario with { Batch = n }, MaxBatch, "batch", budget, batchNotes));
        Task<GpuCount> minGpusTask = Solver(solving, () => GpuCounts.Solve(probe, scenario, fits));
        Task<IReadOnlyList<PlanOption>>? changesTask = training && !fits ? Solver(solving, () => TrainingChanges.Estimate(probe, scenario)) : null;
        Scenario checkpointed = scenario with { GradientCheckpointing = Checkpointing.Full };
        Task<GpuCount>? checkpointedGpusTask = training && !fits && scenario.GradientCheckpointing is Checkpointing.None or Checkpointing.Selective
            ? Solver(solving, () => GpuCounts.Solve(probe, checkpointed, probe.Try(checkpointed).Fits))
            : null;
        Task<IReadOnlyList<PlanOption>>? formatsTask = training ? null
            : Solver(solving, () => WeightLadder.Estimate(probe, scenario, WeightLadder.For(scenario.Engine, scenario, model.Architecture)));
        SolvedValue maxSeq = maxSeqTask is null
            ? FromPool(asGiven, refusal, "longest_max_model_len", model.Architecture!.MaxPositions)
            : Await(maxSeqTask);
        ServingCapacity? capacity = Await(capacityTask);
        SolvedValue maxBatch = maxBatchTask is null
            ? capacity is { Estimate: not null } c
                ? new SolvedValue((int)Math.Min(c.MaxConcurrency, int.MaxValue), SolveLimit.KvPool, c.Reason, 1)
                : new SolvedValue(null, SolveLimit.NothingFits, capacity?.Refusal ?? "no KV pool", 1)
            : Await(maxBatchTask);
        GpuCount minGpus = Await(minGpusTask);
        var notes = new List<string>(seqNotes.Concat(batchNotes));

        int? window = model.Architecture?.MaxPositions;
        if (window is int w && maxSeq.Value > w && !serving)
        {
            notes.Add((maxSeq.Limit == SolveLimit.SearchLimit
                    ? $"This estimate does not grow with the sequence length, so memory sets no limit; the model's context window is {Estimation.Text.N(w)} tokens"
                    : $"Memory allows {Estimation.Text.N(maxSeq.Value.Value)} tokens, beyond the model's context window of {Estimation.Text.N(w)}")
                + " (max_position_embeddings); longer sequences need RoPE scaling or a long-context variant.");
        }

        var plan = new FitPlan
        {
            Scenario = scenario,
            Gpu = gpu,
            Budget = budget,
            Model = model,
            AsGiven = asGiven,
            AsGivenRefusal = refusal,
            MaxSeq = maxSeq,
            MaxBatch = maxBatch,
            ServesRequests = serving,
            Context = serving && capacity is { } served ? served.RequestTokens : scenario.Seq,
            ContextWindow = window,
            MinGpus = minGpus,
            Serving = serving ? null : capacity,
            Notes = notes,
        };
        return training
            ? Training(plan, probe, targetBatch, changesTask is null ? [] : Await(changesTask), checkpointedGpusTask is null ? null : Await(checkpointedGpusTask))
            : Inference(plan, probe, Await(formatsTask!));
    }

    /// <summary>Starts <paramref name="question"/> beside the others; its failure cancels them.</summary>
    private static Task<T> Solver<T>(CancellationTokenSource solving, Func<T> question) => Task.Run(() =>
    {
        try
        {
            return question();
        }
        catch
        {
            solving.Cancel();
            throw;
        }
    }, solving.Token);

    /// <summary>The answer of a solver started with <see cref="Solver{T}"/>, its own exception rethrown as it was thrown.</summary>
    private static T Await<T>(Task<T> task) => task.GetAwaiter().GetResult();

    private static FitPlan Inference(FitPlan plan, FitProbe probe, IReadOnlyList<PlanOption> formats)
    {
        Scenario scenario = plan.Scenario;
        PlanOption? needed = formats.FirstOrDefault(f => f.Fits);
        var notes = new List<string>(plan.Notes);
        // A serving engine whose pool cannot hold one request of max_model_len: a shorter max_model_len is the cheap change.
        PlanOption[] starts = needed is null && plan.ServesRequests
            ? formats.Where(f => f.Estimate is { EngineRefusal: not null } e && e.DeviceTotal <= plan.Budget && LongestRequest(e) > 0).ToArray()
            : [];
        if (starts.Length > 0)
        {
            string longest = string.Join(", ", starts.Select(f => $"{f.Name} up to {Estimation.Text.N(LongestRequest(f.Estimate!))}"));
            notes.Add($"No {Names.Of(scenario.Engine)} format starts at max_model_len {Estimation.Text.N(plan.Context)}: the KV pool cannot hold one request. "
                + $"A shorter --max-model-len starts ({longest} tokens).");
        }
        else if (needed is null && scenario.Engine != Engine.LlamaCpp)
        {
            PlanOption? gguf = WeightLadder.Estimate(probe, scenario with { Engine = Engine.LlamaCpp }, WeightLadder.Gguf).FirstOrDefault(f => f.Fits);
            notes.Add(gguf is null
                ? $"No weight format fits one {plan.Gpu.Name} at this context; see the fewest GPUs."
                : $"No {Names.Of(scenario.Engine)} format fits; with llama.cpp, {gguf.Name} would ({gguf.Estimate!.DeviceTotal}).");
        }

        return plan with { Formats = formats, FormatNeeded = needed?.Name, Notes = notes };
    }

    private static FitPlan Training(FitPlan plan, FitProbe probe, int targetBatch, IReadOnlyList<PlanOption> single, GpuCount? checkpointedGpus)
    {
        Scenario scenario = plan.Scenario;
        AccumulationPlan? accumulation = plan.MaxBatch.Value is int largest
            ? Accumulation.Plan(targetBatch, largest, scenario.Parallel.DataParallel)
            : null;
        if (plan.Fits)
        {
            return plan with { Accumulation = accumulation };
        }

        var changes = new List<PlanOption>(single);
        var spread = new List<(int Gpus, PlanOption Option)>();
        if (plan.MinGpus.Count is int gpus && gpus > scenario.Parallel.Gpus)
        {
            spread.Add((gpus, probe.Option($"{plan.MinGpus.Layout} over {gpus} GPUs", "more GPUs and communication; the same run",
                GpuCounts.SpreadOver(probe, scenario, gpus))));
        }

        // Sharding divides the states but not the activations, so with long sequences checkpointing first can save GPUs.
        if (plan.MinGpus.Supported && checkpointedGpus is { } fewer)
        {
            Scenario checkpointed = scenario with { GradientCheckpointing = Checkpointing.Full };
            if (fewer.Count is int n && n > 1 && n < (plan.MinGpus.Count ?? int.MaxValue))
            {
                spread.Add((n, probe.Option($"gradient checkpointing + {fewer.Layout} over {n} GPUs",
                    "more GPUs, communication and one extra forward pass per step", GpuCounts.SpreadOver(probe, checkpointed, n))));
            }
        }

        // More GPUs cost the most, and fewer of them cost less: these come last, fewest GPUs first.
        changes.AddRange(spread.OrderBy(s => s.Gpus).Select(s => s.Option));
        return plan with { Accumulation = accumulation, Changes = changes };
    }

    /// <summary>
    /// The scenario's own estimate. The GPU was checked before, so an estimator error about the GPU can only mean the
    /// work cannot fit it at all (a serving engine whose weights leave no KV room): that is an answer, "no", not bad input.
    /// Every other error is the user's input and propagates.
    /// </summary>
    private static (MemoryEstimate? Estimate, string? Refusal) AsGiven(ResolvedModel model, Scenario scenario, CancellationToken cancellation)
    {
        try
        {
            MemoryEstimate estimate = MemoryEstimator.Estimate(model, scenario, cancellation);
            return (estimate, estimate.EngineRefusal is { } engine ? $"{Names.Of(scenario.Engine)} refuses to start: {engine}" : null);
        }
        catch (ModelFormatException refused) when (refused.Key == "gpu")
        {
            return (null, refused.Message);
        }
    }

    private static long LongestRequest(MemoryEstimate estimate) => estimate.Facts.FirstOrDefault(f => f.Key == "longest_max_model_len")?.Value ?? 0;

    /// <summary>The largest n ≤ cap at which the scenario fits, and what the next value runs into.</summary>
    private static SolvedValue Solve(FitProbe probe, Func<int, Scenario> at, int cap, string what, ByteSize budget, List<string> notes)
    {
        var seen = new Dictionary<int, Probe>();
        Boundary found = BoundarySearch.Largest(n => (seen[n] = probe.Try(at(n))).Against(budget), cap, n => probe.Fits(at(n)));
        if (!found.Monotone)
        {
            notes.Add($"The estimate is not monotone in the {what}: a larger value fit beyond a first boundary, so the search went on from there.");
        }

        if (found.Value is not int value)
        {
            return new SolvedValue(null, SolveLimit.NothingFits, $"1 does not fit: {Describe(seen[1], budget)}", found.Questions);
        }

        if (found.AtCap)
        {
            return new SolvedValue(value, SolveLimit.SearchLimit,
                $"memory does not limit the {what} up to {Estimation.Text.N(cap)} ({seen[value].Estimate!.DeviceTotal} there)", found.Questions);
        }

        Probe next = seen[value + 1];
        ByteSize free = budget - seen[value].Estimate!.DeviceTotal;
        string reason = next.Estimate is { } over
            ? $"{Estimation.Text.N(value)} leaves {free} free; {Estimation.Text.N(value + 1)} needs {over.DeviceTotal}, {over.DeviceTotal - budget} more than the {budget} usable"
            : $"{Estimation.Text.N(value)} leaves {free} free; {Estimation.Text.N(value + 1)}: {next.Refusal}";
        return new SolvedValue(value, next.Refusal is null ? SolveLimit.Memory : SolveLimit.Estimator, reason, found.Questions);
    }

    /// <summary>A serving engine sizes its KV pool from the GPU, so its limits are the estimate's facts, not a search.</summary>
    private static SolvedValue FromPool(MemoryEstimate? estimate, string? refusal, string fact, int? window)
    {
        if (estimate is null)
        {
            return new SolvedValue(null, SolveLimit.NothingFits, refusal ?? "refused", 0);
        }

        long? value = estimate.Facts.FirstOrDefault(f => f.Key == fact)?.Value;
        long? pool = estimate.Facts.FirstOrDefault(f => f.Key == "kv_tokens")?.Value;
        if (value is not long v || pool is not long tokens)
        {
            return new SolvedValue(null, SolveLimit.NothingFits, $"the estimate has no {fact} fact", 0);
        }

        string reason = window is int w && v == w && tokens > w
            ? $"the model's context window ({Estimation.Text.N(w)}); the pool holds {Estimation.Text.N(tokens)} tokens"
            : $"the KV pool holds {Estimation.Text.N(tokens)} tokens";
        return new SolvedValue((int)Math.Min(v, int.MaxValue), SolveLimit.KvPool, reason, 0);
    }

    /// <summary>vLLM (or the scenario's SGLang) at the scenario's context: its pool in tokens and the requests it holds.</summary>
    private static ServingCapacity Serve(FitProbe probe, Scenario scenario)
    {
        Engine engine = scenario.Engine == Engine.Sglang ? Engine.Sglang : Engine.Vllm;
        // A serving scenario's requests are its max_model_len, resolved as its estimate resolves it; another engine's are its seq.
        int requestTokens = scenario.Engine is Engine.Vllm or Engine.Sglang && probe.Model.Architecture is { } model
            ? Estimation.Inference.ServingSettings.MaxModelLenOf(model, scenario)
            : scenario.EngineOptions.MaxModelLen ?? scenario.Seq;
        Probe served = probe.Try(scenario with
        {
            Engine = engine,
            EngineOptions = scenario.EngineOptions with { MaxModelLen = requestTokens },
        });
        long Fact(string key) => served.Estimate?.Facts.FirstOrDefault(f => f.Key == key)?.Value ?? 0;
        return new ServingCapacity(engine, served.Estimate, served.Refusal, Fact("kv_tokens"), Fact("longest_max_model_len"), requestTokens, Fact("max_concurrency"));
    }

    private static string Describe(Probe probe, ByteSize budget) =>
        probe.Estimate is { } e ? $"{e.DeviceTotal} of {budget}" : probe.Refusal ?? "refused";
}
