using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Worker.Training;

/// <summary>One member's optimizer hyperparameters; members of an array may all differ.</summary>
public sealed record MemberHyperparameters(double Lr, double Momentum, double WeightDecay, double Beta1, double Beta2, double Eps)
{
    public static MemberHyperparameters From(TrainSpec t) => new(t.Lr, t.Momentum, t.WeightDecay, t.Beta1, t.Beta2, t.Eps);
}

/// <summary>
/// SGD (momentum, weight decay) and Adam with PyTorch's update rules, over [K, ...] parameters with per-member
/// hyperparameters held as [K, 1, …] tensors: one update for the whole array, each member with its own values.
/// </summary>
public sealed class ArrayOptimizer : IDisposable
{
    readonly ArrayModel _model;
    Tensor _negativeLr, _momentum, _weightDecay, _oneMinusBeta1, _beta2, _oneMinusBeta2, _eps;
    double[] _lrValues, _beta1Values, _beta2Values;
    bool _anyWeightDecay;
    double[] _weightDecayValues;

    public OptimizerKind Kind { get; }

    /// <summary>Per member: how many updates it has had (Adam's bias correction uses it).</summary>
    public long[] Steps { get; private set; }

    /// <summary>Per parameter: SGD's momentum buffer or Adam's first moment; Adam's second moment.</summary>
    public List<Tensor> FirstMoment { get; } = [];
    public List<Tensor> SecondMoment { get; } = [];

    public ArrayOptimizer(ArrayModel model, OptimizerKind kind, IReadOnlyList<MemberHyperparameters> members)
    {
        _model = model;
        Kind = kind;
        Steps = new long[members.Count];
        Tensor Column(Func<MemberHyperparameters, double> f) => tensor(members.Select(m => (float)f(m)).ToArray());
        _negativeLr = Column(m => -m.Lr);
        _momentum = Column(m => m.Momentum);
        _weightDecay = Column(m => m.WeightDecay);
        _oneMinusBeta1 = Column(m => 1 - m.Beta1);
        _beta2 = Column(m => m.Beta2);
        _oneMinusBeta2 = Column(m => 1 - m.Beta2);
        _eps = Column(m => m.Eps);
        _lrValues = members.Select(m => m.Lr).ToArray();
        _beta1Values = members.Select(m => m.Beta1).ToArray();
        _beta2Values = members.Select(m => m.Beta2).ToArray();
        _weightDecayValues = members.Select(m => m.WeightDecay).ToArray();
        _anyWeightDecay = _weightDecayValues.Any(w => w != 0);
        foreach (var (_, p) in model.Parameters)
        {
            FirstMoment.Add(zeros_like(p));
            if (kind == OptimizerKind.Adam) SecondMoment.Add(zeros_like(p));
        }
    }

    static Tensor PerMember(Tensor column, Tensor like) =>
        column.view([column.shape[0], .. Enumerable.Repeat(1L, (int)like.dim() - 1)]);

    public void ZeroGrad()
    {
        foreach (var (_, p) in _model.Parameters) p.grad?.zero_();
    }

    public void Step()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        for (int k = 0; k < Steps.Length; k++) Steps[k]++;
        Tensor? stepSize = null, bc2Sqrt = null;
        if (Kind == OptimizerKind.Adam)
        {
            // Per member: lr / (1 - β1^t) and sqrt(1 - β2^t), each member with its own step count.
            stepSize = tensor(Steps.Select((t, k) => (float)(-_lrValues[k] / (1 - Math.Pow(_beta1Values[k], t)))).ToArray());
            bc2Sqrt = tensor(Steps.Select((t, k) => (float)Math.Sqrt(1 - Math.Pow(_beta2Values[k], t))).ToArray());
        }
        for (int i = 0; i < _model.Parameters.Count; i++)
        {
            var p = _model.Parameters[i].Value;
            if (p.grad is not { } grad) continue;
            // Fused arrays make these tensors K times larger than one job's and they leave the cache: every
            // pass over them counts, so updates are written in place with addcmul_ and no temporaries.
            var g = _anyWeightDecay ? grad.addcmul_(p, PerMember(_weightDecay, p), 1) : grad;
            var m = FirstMoment[i];
            if (Kind == OptimizerKind.Sgd)
            {
                // buf = momentum·buf + g; with buf starting at 0 the first step gives buf = g exactly, as PyTorch.
                m.mul_(PerMember(_momentum, p)).add_(g);
                p.addcmul_(m, PerMember(_negativeLr, p), 1);
            }
            else
            {
                var v = SecondMoment[i];
                m.lerp_(g, PerMember(_oneMinusBeta1, p));
                v.mul_(PerMember(_beta2, p)).addcmul_(g, g.mul(PerMember(_oneMinusBeta2, p)), 1);
                var denom = v.sqrt().div_(PerMember(bc2Sqrt!, p)).add_(PerMember(_eps, p));
                p.addcmul_(m.div(denom), PerMember(stepSize!, p), 1);
            }
        }
    }

    /// <summary>Keeps only the given members' state and hyperparameters (see <see cref="ArrayModel.Keep"/>).</summary>
    public void Keep(Tensor members, IReadOnlyList<int> indices)
    {
        Tensor Select(Tensor t)
        {
            var kept = t.index_select(0, members);
            t.Dispose();
            return kept;
        }
        using (no_grad())
        {
            for (int i = 0; i < FirstMoment.Count; i++) FirstMoment[i] = Select(FirstMoment[i]);
            for (int i = 0; i < SecondMoment.Count; i++) SecondMoment[i] = Select(SecondMoment[i]);
            (_negativeLr, _momentum, _weightDecay, _oneMinusBeta1, _beta2, _oneMinusBeta2, _eps) =
                (Select(_negativeLr), Select(_momentum), Select(_weightDecay), Select(_oneMinusBeta1), Select(_beta2), Select(_oneMinusBeta2), Select(_eps));
        }
        Steps = indices.Select(i => Steps[i]).ToArray();
        _lrValues = indices.Select(i => _lrValues[i]).ToArray();
        _beta1Values = indices.Select(i => _beta1Values[i]).ToArray();
        _beta2Values = indices.Select(i => _beta2Values[i]).ToArray();
        _weightDecayValues = indices.Select(i => _weightDecayValues[i]).ToArray();
        _anyWeightDecay = _weightDecayValues.Any(w => w != 0);
    }

    public void Dispose()
    {
        foreach (var t in FirstMoment.Concat(SecondMoment).Concat([_negativeLr, _momentum, _weightDecay, _oneMinusBeta1, _beta2, _oneMinusBeta2, _eps])) t.Dispose();
    }
}
