"""A tour of the tensor basics from the notes lazygrad grew out of, step by step.

Run it:   python examples/seed_tour.py

Every snippet is ordinary PyTorch code; `import lazygrad as torch` is the only
change. Each step prints its result and the shapes before and after, so you
can see what each `dim` argument did. The test suite runs `tour()` with real
PyTorch as well and checks that both print the same thing.
"""
import numpy as np

import lazygrad as torch
import lazygrad.nn.functional as F


def tour(torch=torch, F=F, print=print):
    """The whole walk-through. `torch` and `F` are parameters so the tests can pass in real PyTorch."""

    def shape(t):
        return tuple(t.shape)

    def step(title):
        print()
        print(f"== {title} ==")

    # 1. Tensors vs NumPy arrays: same data, and a tensor can come from / go back to an array
    step("1. tensors and NumPy arrays")
    array = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = torch.tensor(array)
    print("numpy array:", array.tolist(), "dtype", array.dtype)
    print("tensor:     ", t, "shape", shape(t), "dtype", t.dtype)
    print("from_numpy: ", torch.from_numpy(array))
    print("back to numpy:", t.numpy().tolist())
    print("a float list gives float32:", torch.tensor([1.0, 2.0]).dtype,
          "| an int list gives int64:", torch.tensor([1, 2]).dtype)

    # 2. Device: where the tensor lives
    step("2. device")
    t = torch.tensor([1.0, 2.0, 3.0])
    print("t.device:", t.device)
    print("t.cpu().device:", t.cpu().device, "| t.to('cpu').device:", t.to("cpu").device)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print("(this machine) cuda available:", torch.cuda.is_available(), "-> using", device)

    # 3. view: the same elements in a new shape (no copy)
    step("3. view")
    t = torch.arange(6)
    print("t:", t, "shape", shape(t))
    v = t.view(2, 3)
    print("t.view(2, 3):", v, "shape", shape(v))
    print("t.view(3, -1) shape:", shape(t.view(3, -1)), "(-1 is worked out: 6 / 3 = 2)")
    try:
        v.t().view(6)
    except RuntimeError as e:
        print("v.t().view(6) raises:", e)
    print("v.t().reshape(6):", v.t().reshape(6))

    # 4. squeeze / unsqueeze on a 2x2 tensor
    step("4. squeeze and unsqueeze")
    x = torch.tensor([[1, 2], [3, 4]])
    print("x:", x, "shape", shape(x))
    for d in (0, 1, 2, -1):
        print(f"x.unsqueeze({d}) shape:", shape(x.unsqueeze(d)))
    print("x.unsqueeze(0):", x.unsqueeze(0))
    print("x.unsqueeze(1):", x.unsqueeze(1))
    y = x.unsqueeze(1)
    print("x.unsqueeze(1).squeeze(1) shape:", shape(y.squeeze(1)), "| squeeze() drops every size-1 dim:",
          shape(torch.zeros(1, 2, 1, 2).squeeze()))
    print("squeeze(0) on a dim of size 2 does nothing:", shape(x.squeeze(0)))

    # 5. mm vs matmul
    step("5. mm vs matmul")
    a = torch.arange(6.0).reshape(2, 3)
    print("a:", a, "shape", shape(a))
    try:
        torch.mm(a, a)
    except RuntimeError as e:
        print("torch.mm(a, a) raises:", e)
    print("torch.mm(a, a.T):", torch.mm(a, a.T), "shape", shape(torch.mm(a, a.T)))
    vec = torch.tensor([1.0, 0.0, -1.0])
    print("vec:", vec, "shape", shape(vec))
    r = torch.matmul(a, vec)
    print("torch.matmul(a, vec) (the vector is a column):", r, "shape", shape(r))
    b = torch.arange(12.0).reshape(2, 3, 2)
    print("a @ b with b of shape", shape(b), "(batched, a is broadcast):", shape(a @ b))

    # 6. dot: 1-D only
    step("6. dot")
    p, q = torch.tensor([2.0, 3.0]), torch.tensor([2.0, 1.0])
    print("torch.dot(p, q):", torch.dot(p, q), "shape", shape(torch.dot(p, q)))
    try:
        torch.dot(a, a)
    except RuntimeError as e:
        print("torch.dot on 2-D tensors raises:", e)

    # 7. softmax along a dim
    step("7. softmax")
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    s0 = F.softmax(t, dim=0)
    s1 = F.softmax(t, dim=1)
    print("F.softmax(t, dim=0):", s0, "-> each column sums to 1:", s0.sum(dim=0))
    print("F.softmax(t, dim=1):", s1, "-> each row sums to 1:", s1.sum(dim=1))
    print("large inputs are fine:", F.softmax(torch.tensor([1e4, 0.0, -1e4]), dim=0))

    # 8. index_select: whole slices by index
    step("8. index_select")
    x = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    idx = torch.tensor([2, 0])
    print("x:", x, "shape", shape(x))
    r0 = torch.index_select(x, 0, idx)
    r1 = torch.index_select(x, 1, idx)
    print("index_select(x, 0, [2, 0]) (rows):", r0, "shape", shape(r0))
    print("index_select(x, 1, [2, 0]) (columns):", r1, "shape", shape(r1))

    # 9. gather: one element per index, along a dim
    step("9. gather")
    A = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    index = torch.tensor([[0], [1]])
    g = torch.gather(A, 1, index)
    print("A:", A, "index:", index, "shape", shape(index))
    print("torch.gather(A, 1, index) (out[i][j] = A[i][index[i][j]]):", g, "shape", shape(g))
    print("flattened:", g.flatten(), "shape", shape(g.flatten()))

    # 10. numel
    step("10. numel")
    t = torch.zeros(2, 3, 4)
    print("torch.numel(t):", torch.numel(t), "| t.numel():", t.numel(), "| shape", shape(t))

    # 11. chunk: may give fewer chunks than asked
    step("11. chunk")
    t = torch.arange(6)
    pieces = t.chunk(4)
    print("torch.arange(6).chunk(4) gives", len(pieces), "chunks:", pieces)
    print("their shapes:", [shape(c) for c in pieces], "(each ceil(6 / 4) = 2 long)")
    m = torch.arange(10).reshape(2, 5)
    print("chunk(2, dim=1) on shape", shape(m), "->", [shape(c) for c in m.chunk(2, dim=1)])

    # 12. dim vs axis
    step("12. dim vs axis")
    t = torch.tensor([[1, 2, 3], [4, 5, 6]])
    print("t.sum(dim=0):", t.sum(dim=0), "| t.sum(axis=0):", t.sum(axis=0),
          "| numpy .sum(axis=0):", t.numpy().sum(axis=0).tolist())
    print("t.sum(dim=1):", t.sum(dim=1), "-> shape", shape(t.sum(dim=1)),
          "| keepdim=True -> shape", shape(t.sum(dim=1, keepdim=True)))

    # 13. swapdims
    step("13. swapdims")
    t = torch.arange(24).reshape(2, 3, 4)
    s = t.swapdims(0, 2)
    print("t shape", shape(t), "-> t.swapdims(0, 2) shape", shape(s))
    print("s[3, 2, 1] == t[1, 2, 3]:", s[3, 2, 1].item() == t[1, 2, 3].item(), "| same as transpose:",
          torch.equal(s, t.transpose(0, 2)))

    # 14. scatter_: write values at indexed places, in place
    step("14. scatter_")
    z = torch.zeros(3, 5)
    src = torch.arange(1.0, 11.0).reshape(2, 5)
    where_to = torch.tensor([[0, 1, 2, 0, 0], [2, 0, 0, 1, 2]])
    out = z.scatter_(0, where_to, src)
    print("src:", src, "index:", where_to)
    print("z.scatter_(0, index, src) (z[index[i][j]][j] = src[i][j]):", z, "shape", shape(z))
    print("returns z itself:", out is z)


if __name__ == "__main__":
    tour()
