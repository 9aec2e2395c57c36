// libFuzzer target: the input is index.json text. Whatever it holds, parsing and validation must return an error
// or an image, never crash, hang or allocate without bound; and every image validate_image accepts must also pass
// the separately written image_invariants_hold, or validate_image let something through that restore would trust.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "image/json.h"
#include "image/validate.h"

using namespace bpfckpt::image;
using nlohmann::json;

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

// Real indexes are far larger than this only for huge trees; 1 MiB is plenty to reach every check and keeps each
// run's memory and time bounded.
constexpr size_t kMaxInput = 1u << 20;

// Blobs "on disk" without a disk: the sizes blobs[] claims, so that the bounds checks are what gets explored. The
// xxh3 field, unused here, lets the fuzzer reach the other paths: a blob whose xxh3 starts with "00" is missing,
// one whose xxh3 starts with "ff" is a byte longer than listed.
BlobSizes blob_sizes_for(const Image& img)
{
	BlobSizes sizes;
	for (const Blob& b : img.blobs) {
		if (b.xxh3.starts_with("00"))
			continue;
		sizes[b.name] = b.xxh3.starts_with("ff") ? b.size + 1 : b.size;
	}
	return sizes;
}

// Byte-level mutations almost never turn a valid index into a valid but wrong one: most break the syntax or a
// field's type, and the few that land on a number rarely keep it page-aligned. So, when the input is JSON, mutate
// its values instead: a number becomes a neighbour, a boundary or another number of the same index (which is how
// runs come to overlap and offsets to land past a blob); a string becomes another string of the index or a hostile
// name; an array element is duplicated, dropped or swapped with another.
class JsonMutator {
public:
	explicit JsonMutator(unsigned seed) : rng_(seed) {}

	// false when the document is too deep to walk or has nothing to mutate.
	bool mutate(json& doc)
	{
		if (!collect(doc))
			return false;
		switch (pick(3)) {
		case 0:
			if (numbers_.empty())
				return false;
			mutate_number(*numbers_[pick(numbers_.size())]);
			return true;
		case 1:
			if (strings_.empty())
				return false;
			mutate_string(*strings_[pick(strings_.size())]);
			return true;
		default:
			if (arrays_.empty())
				return false;
			mutate_array(*arrays_[pick(arrays_.size())]);
			return true;
		}
	}

private:
	// Iterative, and refusing depth beyond any real index: dump() recurses.
	bool collect(json& doc)
	{
		std::vector<std::pair<json*, int>> todo{{&doc, 0}};
		while (!todo.empty()) {
			auto [j, depth] = todo.back();
			todo.pop_back();
			if (depth > 32)
				return false;
			if (j->is_number())
				numbers_.push_back(j);
			else if (j->is_string())
				strings_.push_back(j);
			if (j->is_array() && !j->empty())
				arrays_.push_back(j);
			if (j->is_structured())
				for (json& child : *j)
					todo.push_back({&child, depth + 1});
		}
		return true;
	}

	size_t pick(size_t n) { return size_t(rng_() % n); }

	void mutate_number(json& n)
	{
		uint64_t v = n.is_number_float() ? 0 : n.get<uint64_t>();
		const json* o = numbers_[pick(numbers_.size())];  // picked once: check and read the same number
		uint64_t other = o->is_number_float() ? 1 : o->get<uint64_t>();
		switch (pick(12)) {
		case 0: n = v + 1; break;
		case 1: n = v - 1; break;
		case 2: n = v + kPageSize; break;
		case 3: n = v - kPageSize; break;
		case 4: n = v * 2; break;
		case 5: n = v / 2; break;
		case 6: n = other; break;
		case 7: n = other + kPageSize; break;
		case 8: n = other - kPageSize; break;
		case 9: n = uint64_t(1) << pick(64); break;
		case 10: n = ~uint64_t(0) - pick(2) * (kPageSize - 1); break;
		default: n = -int64_t(pick(3)); break;
		}
	}

	void mutate_string(json& s)
	{
		static const char* const hostile[] = {"", "..", ".", "a/b", "../x", "/abs", "zombie", "pipe", "\x1b"};
		if (pick(2))
			s = *strings_[pick(strings_.size())];
		else
			s = hostile[pick(std::size(hostile))];
	}

	void mutate_array(json& a)
	{
		size_t i = pick(a.size()), k = pick(a.size());
		switch (pick(3)) {
		case 0:
			a.insert(a.begin() + std::ptrdiff_t(k), json(a[i]));
			break;
		case 1:
			a.erase(a.begin() + std::ptrdiff_t(i));
			break;
		default:
			std::swap(a[i], a[k]);
			break;
		}
	}

	std::minstd_rand rng_;
	std::vector<json*> numbers_, strings_, arrays_;
};

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed)
{
	// One time in four, or whenever the value-level mutation cannot be done, libFuzzer's own byte mutations: they
	// keep exploring the parser.
	if (seed % 4 != 0) {
		json doc = json::parse(data, data + size, nullptr, false);
		if (!doc.is_discarded() && JsonMutator(seed).mutate(doc)) {
			std::string out = doc.dump();
			if (out.size() <= max_size) {
				std::memcpy(data, out.data(), out.size());
				return out.size();
			}
		}
	}
	return LLVMFuzzerMutate(data, size, max_size);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
	if (size > kMaxInput)
		return -1;  // not added to the corpus
	auto img = parse_index(std::string(reinterpret_cast<const char*>(data), size));
	if (!img)
		return 0;
	BlobSizes sizes = blob_sizes_for(*img);
	if (!validate_image(*img, sizes))
		return 0;
	if (!image_invariants_hold(*img, sizes)) {
		std::fputs("fuzz_image: validate_image accepted an image that breaks the invariants\n", stderr);
		std::abort();
	}
	return 0;
}
