// A std::vector whose data starts on a 64-byte boundary. glibc's malloc returns 16-byte
// aligned blocks (a large one sits 16 bytes past a page start), so with std::vector every
// 64-byte load of a kernel's weights straddles two cache lines, and every other 32-byte one.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace mcw {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace mcw
