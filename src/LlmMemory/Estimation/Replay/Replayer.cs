using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// Replays what a PyTorch script does with the model (research/torch model.py <c>simulate</c>): load the model, take a
/// batch of ids, reset the peak counters, then one forward under <c>no_grad</c> (inference) or steps of forward (under
/// autocast for mixed precision), backward, <c>optimizer.step()</c> and <c>zero_grad(set_to_none=True)</c>.
/// </summary>
internal static class Replayer
{
    private static long _runs;

    /// <summary>Replays run by this process (bench/ counts what each solver costs with it).</summary>
    public static long Runs => Interlocked.Read(ref _runs);

    public static ReplayResult Run(ModelArchitecture model, ReplayOptions options, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        Interlocked.Increment(ref _runs);
        if (options.Training && model.Experts is not null)
        {
            throw new NotSupportedException($"Training a mixture-of-experts model ({model.ModelType}) is not replayed yet: its routed experts have no autograd program.");
        }

        var engine = new ReplayEngine(options.Capacity, options.WorkspaceBytes, options.Allocator, cancellation);
        engine.Sharded = options.Sharding switch
        {
            { Zero: not null } zero => new ZeroStep(engine, zero),
            { } sharding => new ShardedStep(engine, sharding),
            null => null,
        };
        engine.Placement = options.Placement;
        engine.SoftmaxSavesInput = options.SoftmaxSavesInput;
        engine.Device = options.Placement?.Map.Embedding ?? 0;
        ModelProgram? program = null;
        string? outOfMemory = null;
        try
        {
            program = Program(engine, model, options);
            program.Ids = engine.Empty([options.Batch, options.Seq], ScalarType.Int64, MemoryTag.Inputs);
            // generate()'s caller passes an attention mask beside the ids, made before the peak counters are reset.
            Tensor? attentionMask = options.NewTokens is null ? null : engine.Empty([options.Batch, options.Seq], ScalarType.Int64, MemoryTag.Inputs);
            engine.StartTracking();
            if (options.Training)
            {
                Train(engine, program, options);
            }
            else if (options.NewTokens is int newTokens)
            {
                engine.GradEnabled = false;
                ((DecoderProgram)program).Generate(newTokens, attentionMask!);
            }
            else
            {
                engine.GradEnabled = false;
                engine.SetPhase("forward");
                program.Forward(labels: false, training: false).ReleaseOutputs();
            }
        }
        catch (ReplayOutOfMemoryException e)
        {
            outOfMemory = $"{engine.Phase}: {e.Message}";
        }

        return new ReplayResult(program?.LoadedBytes ?? engine.Allocator.Allocated, engine.Allocator.PeakAllocated, engine.Allocator.PeakReserved, engine.PeakPhase ?? "load",
            engine.PeakBackwardLayer, engine.PeakBreakdown, engine.Timeline, engine.PeakTimelineIndex, outOfMemory);
    }

    private static void Train(ReplayEngine engine, ModelProgram program, ReplayOptions options)
    {
        var optimizer = new OptimizerReplay(engine, program.Weights.Trainable, options.Optimizer, options.OptimizerInBackward);
        if (engine.Sharded?.InitializesOptimizer == true)
        {
            optimizer.Initialize();
        }

        for (int step = 1; step <= options.Steps; step++)
        {
            for (int micro = 1; micro <= options.MicroBatches; micro++)
            {
                string tag = options.MicroBatches > 1 ? $"step{step}.mb{micro}" : $"step{step}";
                engine.SetPhase(tag + ".forward");
                engine.Sharded?.BeginForward();
                engine.Autocast = options.Autocast;
                ForwardResult output = program.Forward(labels: true, training: true);
                engine.ModelReturned();
                if (options.HoldPreviousLogits)
                {
                    engine.LoopHeld = output;
                }
                else
                {
                    output.ReleaseOutputs();
                }

                engine.Autocast = null;
                engine.ClearAutocastCache();
                engine.SetPhase(tag + ".backward");
                engine.Sharded?.BeginBackward();
                engine.Backward(output.Loss!);
                output.Loss!.Release();
                engine.Sharded?.EndBackward();
            }

            engine.SetPhase($"step{step}.optimizer");
            engine.Sharded?.BeforeOptimizerStep();
            optimizer.Step();
            if (!options.KeepGradients)
            {
                optimizer.ZeroGrad();
            }
        }

        engine.ModelReturned();
    }

    /// <summary>The family's model program (tests read the saved tensors of its forward).</summary>
    internal static ModelProgram Program(ReplayEngine engine, ModelArchitecture model, ReplayOptions options) => model.Family switch
    {
        ModelFamily.LlamaLike => new DecoderProgram(engine, model, options),
        ModelFamily.Gpt2 or ModelFamily.GptNeoX or ModelFamily.GptJ or ModelFamily.Falcon or ModelFamily.Opt or ModelFamily.Bloom
            => new ClassicProgram(engine, model, options),
        ModelFamily.Bert => new BertProgram(engine, model, options),
        _ => throw new ModelFormatException("model", "model_type", $"is {model.ModelType}, whose {model.Family} blocks the PyTorch replay does not implement."),
    };
}

/// <summary>What a replay measured.</summary>
/// <param name="LoadedBytes">Allocated after loading the base model (<c>memory_allocated()</c>, allocator blocks).</param>
/// <param name="PeakAllocated"><c>max_memory_allocated()</c> after the reset.</param>
/// <param name="PeakReserved"><c>max_memory_reserved()</c>.</param>
/// <param name="PeakPhase">Where the allocated peak happened ("step2.backward", "forward:head").</param>
/// <param name="PeakBackwardLayer">The block whose backward ran at the peak (-1: outside the blocks); null outside backward.</param>
/// <param name="Breakdown">Live bytes per <see cref="MemoryTag"/> at the peak.</param>
/// <param name="Timeline">Live bytes at phase boundaries.</param>
/// <param name="PeakIndex">How many <paramref name="Timeline"/> points precede the peak.</param>
/// <param name="OutOfMemory">Where and why the run needed more than the capacity; null when it fit.</param>
internal sealed record ReplayResult(long LoadedBytes, long PeakAllocated, long PeakReserved, string PeakPhase, int? PeakBackwardLayer,
    IReadOnlyList<long> Breakdown, IReadOnlyList<ReplayPoint> Timeline, int PeakIndex, string? OutOfMemory)
{
    public long Live(MemoryTag tag) => Breakdown[(int)tag];
}
