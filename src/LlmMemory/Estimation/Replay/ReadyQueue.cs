namespace LlmMemory.Estimation.Replay;

/// <summary>
/// The autograd engine's ready queue: a binary heap on the sequence number, highest first. It follows CPython's
/// <c>heapq</c> step by step, so nodes with equal numbers (the <c>AccumulateGrad</c> nodes) come out in the same order as
/// in the reference replay.
/// </summary>
internal sealed class ReadyQueue
{
    private readonly List<GradNode> _heap = [];

    public int Count => _heap.Count;

    public void Push(GradNode node)
    {
        _heap.Add(node);
        SiftDown(0, _heap.Count - 1);
    }

    public GradNode Pop()
    {
        GradNode last = _heap[^1];
        _heap.RemoveAt(_heap.Count - 1);
        if (_heap.Count == 0)
        {
            return last;
        }

        GradNode top = _heap[0];
        _heap[0] = last;
        SiftUp(0);
        return top;
    }

    private static bool Before(GradNode a, GradNode b) => a.Sequence > b.Sequence;

    private void SiftDown(int start, int position)
    {
        GradNode item = _heap[position];
        while (position > start)
        {
            int parent = (position - 1) >> 1;
            if (!Before(item, _heap[parent]))
            {
                break;
            }

            _heap[position] = _heap[parent];
            position = parent;
        }

        _heap[position] = item;
    }

    private void SiftUp(int position)
    {
        int end = _heap.Count;
        int start = position;
        GradNode item = _heap[position];
        int child = (2 * position) + 1;
        while (child < end)
        {
            int right = child + 1;
            if (right < end && !Before(_heap[child], _heap[right]))
            {
                child = right;
            }

            _heap[position] = _heap[child];
            position = child;
            child = (2 * position) + 1;
        }

        _heap[position] = item;
        SiftDown(start, position);
    }
}
