// Must not compile: the extra says it acts at the feed-forward branch, but its
// method is misspelled (ffn_brnach), so it would never run. The first error
// names the site and the method it expects.
#include "normlab/normlab.hpp"

struct HalveBranch {
  static constexpr std::string_view word = "halve_branch";
  static constexpr std::string_view equation = "Branch_ffn(f) = f / 2";
  static constexpr normlab::SiteSet sites = {normlab::Site::ffn_branch};
  template <normlab::FloatingElement T, class B>
  struct State : normlab::Module<T, B> {
    explicit State(const normlab::ExtraContext&) {}
    normlab::Variable<T, B> ffn_brnach(const normlab::Variable<T, B>& f) const { return f * 0.5; }
  };
};

int main() {
  normlab::ModelConfig cfg;
  using Policy = normlab::compose<normlab::PreLN, HalveBranch>;
  cfg.set_policy<Policy>();
  normlab::GPT<Policy, float, normlab::Cpu> model(cfg);
  return static_cast<int>(model.parameter_count() % 2);
}
