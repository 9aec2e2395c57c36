// Sets of addresses as sorted, disjoint, non-adjacent [start, end) ranges, and the three operations the
// incremental dump combines its page marks with.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace bpfckpt {

using AddressRanges = std::vector<std::pair<uint64_t, uint64_t>>;

// Appends [s, e) to a set whose ranges all start at or before s, merging with the last one when they touch.
inline void append_range(AddressRanges& set, uint64_t s, uint64_t e)
{
	if (s >= e)
		return;
	if (!set.empty() && s <= set.back().second)
		set.back().second = std::max(set.back().second, e);
	else
		set.emplace_back(s, e);
}

inline AddressRanges unite(const AddressRanges& a, const AddressRanges& b)
{
	AddressRanges out;
	size_t i = 0, j = 0;
	while (i < a.size() || j < b.size()) {
		bool take_a = j == b.size() || (i < a.size() && a[i].first <= b[j].first);
		const auto& r = take_a ? a[i++] : b[j++];
		append_range(out, r.first, r.second);
	}
	return out;
}

inline AddressRanges intersect(const AddressRanges& a, const AddressRanges& b)
{
	AddressRanges out;
	for (size_t i = 0, j = 0; i < a.size() && j < b.size();) {
		append_range(out, std::max(a[i].first, b[j].first), std::min(a[i].second, b[j].second));
		if (a[i].second < b[j].second)
			i++;
		else
			j++;
	}
	return out;
}

// a without b.
inline AddressRanges subtract(const AddressRanges& a, const AddressRanges& b)
{
	AddressRanges out;
	size_t j = 0;
	for (auto [s, e] : a) {
		while (j < b.size() && b[j].second <= s)
			j++;
		uint64_t at = s;
		for (size_t k = j; k < b.size() && b[k].first < e; k++) {
			append_range(out, at, b[k].first);
			at = std::max(at, b[k].second);
		}
		append_range(out, at, e);
	}
	return out;
}

}  // namespace bpfckpt
