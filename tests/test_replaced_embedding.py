"""The generator's embedding of visible replaced tokens: id V + i is token i plus the learned type vector."""
import pytest
import torch
from torch import nn

from diffuser_mt.replaced_embedding import ReplacedTokenEmbedding


@pytest.fixture
def embedding():
    torch.manual_seed(0)
    return ReplacedTokenEmbedding(nn.Embedding(10, 4, padding_idx=1))


def test_plain_ids_embed_as_before_and_marked_ids_add_the_type_vector(embedding):
    ids = torch.tensor([[0, 3, 13, 1], [19, 9, 11, 2]])
    base = embedding.embedding(ids % 10)
    marked = (ids >= 10).unsqueeze(-1)
    assert torch.equal(embedding(ids), torch.where(marked, base + embedding.replaced, base))


def test_it_shows_the_wrapped_embedding_to_fairseq(embedding):
    assert (embedding.offset, embedding.padding_idx, embedding.embedding_dim) == (10, 1, 4)
    assert embedding.weight is embedding.embedding.weight


def test_the_type_vector_learns_only_from_marked_ids(embedding):
    embedding(torch.tensor([3, 4])).sum().backward()
    assert embedding.replaced.grad is None or not embedding.replaced.grad.any()
    embedding(torch.tensor([13, 4])).sum().backward()
    assert torch.equal(embedding.replaced.grad, torch.ones(4))


def test_it_follows_the_dtype_of_the_model(embedding):
    half = embedding.to(torch.bfloat16)
    assert half(torch.tensor([2, 12])).dtype == torch.bfloat16
