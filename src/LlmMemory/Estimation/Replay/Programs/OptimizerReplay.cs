using LlmMemory.Estimation.Training;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// The optimizer's memory: states created at the first step (or the first gradient, in backward), temporaries of a step,
/// and <c>zero_grad</c> (research/torch SPEC §6; programs.py <c>Optim</c>).
/// </summary>
internal sealed class OptimizerReplay
{
    private readonly ReplayEngine _engine;
    private readonly IReadOnlyList<Tensor> _parameters;
    private readonly ReplayOptimizer _kind;
    private readonly bool _inBackward;
    private readonly Dictionary<Tensor, Tensor[]> _states = new(ReferenceEqualityComparer.Instance);

    public OptimizerReplay(ReplayEngine engine, IReadOnlyList<Tensor> parameters, ReplayOptimizer kind, bool inBackward)
    {
        _engine = engine;
        _parameters = parameters;
        _kind = kind;
        _inBackward = inBackward;
        if (inBackward)
        {
            engine.OnGradient = StepOne;
        }
    }

    /// <summary><c>optimizer.step()</c>.</summary>
    public void Step()
    {
        if (_inBackward)
        {
            return;
        }

        Tensor[] stepped = _parameters.Where(p => p.Grad is not null).ToArray();
        if (_kind is ReplayOptimizer.AdamWPerParameter or ReplayOptimizer.AdamWSingleTensor or ReplayOptimizer.Adafactor or ReplayOptimizer.Lion)
        {
            // Per-parameter loops create each state just before using it.
            foreach (Tensor p in stepped)
            {
                CreateStates(p);
                Temporaries(p);
            }

            return;
        }

        foreach (Tensor p in stepped)
        {
            CreateStates(p);
        }

        if (_kind == ReplayOptimizer.AdamW)
        {
            // _multi_tensor_adamw: exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs) per (device, dtype) group.
            foreach (IGrouping<ScalarType, Tensor> group in stepped.GroupBy(p => p.Type))
            {
                Tensor[] copies = group.Select(p => _engine.Empty(p.Shape, p.Type, MemoryTag.OptimizerTemporary)).ToArray();
                Blocks.Release(copies);
            }
        }
    }

    /// <summary>
    /// States made before training, as DeepSpeed's ZeRO optimizers make them at initialization
    /// (<c>initialize_optimizer_states</c>): a zero gradient of each stepped tensor, one step that creates the states, the
    /// gradient dropped.
    /// </summary>
    public void Initialize()
    {
        foreach (Tensor p in _parameters)
        {
            Tensor zero = _engine.Empty(p.Shape, p.Type, MemoryTag.Gradient);
            CreateStates(p);
            zero.Release();
        }
    }

    /// <summary><c>zero_grad(set_to_none=True)</c>: the gradients are freed.</summary>
    public void ZeroGrad()
    {
        foreach (Tensor p in _parameters)
        {
            p.Grad?.Release();
            p.Grad = null;
        }
    }

    /// <summary>Optimizer in backward: each parameter is stepped as its gradient arrives, then the gradient is freed.</summary>
    private void StepOne(Tensor p, Tensor gradient)
    {
        CreateStates(p);
        Temporaries(p);
        if (_kind == ReplayOptimizer.AdamW)
        {
            _engine.Empty(p.Shape, p.Type, MemoryTag.OptimizerTemporary).Release();
        }
    }

    private void CreateStates(Tensor p)
    {
        if (_states.ContainsKey(p))
        {
            return;
        }

        _states[p] = [.. OptimizerStates.OnDevice(States(_kind), p.Shape).Select(s => State(s.Shape, s.Storage switch
        {
            OptimizerStates.Storage.Float32 => ScalarType.Float32,
            OptimizerStates.Storage.UInt8 => ScalarType.UInt8,
            _ => p.Type,
        }))];
    }

    /// <summary>The states an implementation keeps, from the one table; of a paged optimizer's, only those <see cref="OptimizerStates.OnDevice"/> keeps in device memory are allocated here.</summary>
    public static OptimizerKind States(ReplayOptimizer kind) => kind switch
    {
        ReplayOptimizer.AdamW or ReplayOptimizer.AdamWFused or ReplayOptimizer.AdamWPerParameter or ReplayOptimizer.AdamWSingleTensor => OptimizerKind.AdamW,
        ReplayOptimizer.AdamW8Bit => OptimizerKind.AdamW8Bit,
        ReplayOptimizer.Adafactor => OptimizerKind.Adafactor,
        ReplayOptimizer.SgdMomentum => OptimizerKind.SgdMomentum,
        ReplayOptimizer.Lion => OptimizerKind.Lion,
        ReplayOptimizer.Paged => OptimizerKind.PagedAdamW,
        ReplayOptimizer.Paged8Bit => OptimizerKind.PagedAdamW8Bit,
        _ => OptimizerKind.Sgd,
    };

    /// <summary>What one parameter's update allocates and frees.</summary>
    private void Temporaries(Tensor p)
    {
        switch (_kind)
        {
            case ReplayOptimizer.AdamWPerParameter:
                // denom = exp_avg_sq.sqrt().add_(eps)
                Temporary(p.Type).Release();
                break;
            case ReplayOptimizer.AdamWSingleTensor:
                // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps): the root lives until the quotient exists.
                Tensor root = Temporary(p.Type);
                Tensor quotient = Temporary(p.Type);
                root.Release();
                quotient.Release();
                break;
            case ReplayOptimizer.Adafactor:
                // update = grad**2 + eps; update = approx_sq_grad(row, col) (or exp_avg_sq.rsqrt()); p.add_(-update): two live at a time.
                Tensor squared = Temporary(ScalarType.Float32);
                Tensor update = Temporary(ScalarType.Float32);
                squared.Release();
                Tensor scaled = Temporary(ScalarType.Float32);
                update.Release();
                Temporary(ScalarType.Float32).Release();
                scaled.Release();
                break;
            case ReplayOptimizer.Lion:
                // update = exp_avg.clone().mul_(beta1).add(grad, alpha=1 - beta1).sign_()
                Tensor clone = Temporary(p.Type);
                Tensor sum = Temporary(p.Type);
                clone.Release();
                sum.Release();
                break;
        }

        Tensor Temporary(ScalarType type) => _engine.Empty(p.Shape, type, MemoryTag.OptimizerTemporary);
    }

    private Tensor State(long[] shape, ScalarType type) => _engine.Empty(shape, type, MemoryTag.OptimizerState);
}
