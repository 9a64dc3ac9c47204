"""Golden tests for fold-constants, dce, remove-identity and cse."""

from tests.passes.golden import assert_pass


def test_fold_constants_evaluates_constant_subgraphs():
    assert_pass("""
        graph @main(%x: f32[2]) {
          %a: f32[2] = constant [1.0, 2.0]
          %b: f32[2] = constant [3.0, 4.0]
          %s: f32[2] = Add(%a, %b)
          %e: f32[2] = Neg(%s)
          %y: f32[2] = Mul(%x, %e)
          return %y
        }""", "fold-constants,dce", """
        graph @main(%x: f32[2]) {
          %e: f32[2] = constant [-4.0, -6.0]
          %y: f32[2] = Mul(%x, %e)
          return %y
        }""")


def test_fold_constants_leaves_input_dependent_nodes():
    src = """
        graph @main(%x: f32[2]) {
          %a: f32[2] = constant [1.0, 2.0]
          %y: f32[2] = Add(%x, %a)
          return %y
        }"""
    assert_pass(src, "fold-constants", src)


def test_fold_constants_keeps_graph_outputs_named():
    assert_pass("""
        graph @main(%x: f32[2]) {
          %a: f32[2] = constant [1.0, 2.0]
          %y: f32[2] = Neg(%a)
          return %y, %x
        }""", "fold-constants,dce", """
        graph @main(%x: f32[2]) {
          %y: f32[2] = constant [-1.0, -2.0]
          return %y, %x
        }""")


def test_dce_removes_unused_nodes_and_constants():
    assert_pass("""
        graph @main(%x: f32[2]) {
          %unused_c: f32[2] = constant [1.0, 2.0]
          %dead: f32[2] = Exp(%x)
          %dead2: f32[2] = Neg(%dead)
          %y: f32[2] = Relu(%x)
          return %y
        }""", "dce", """
        graph @main(%x: f32[2]) {
          %y: f32[2] = Relu(%x)
          return %y
        }""")


def test_dce_keeps_everything_used():
    src = """
        graph @main(%x: f32[2]) {
          %c: f32[2] = constant [1.0, 2.0]
          %a: f32[2] = Add(%x, %c)
          %y: f32[2] = Relu(%a)
          return %y, %a
        }"""
    assert_pass(src, "dce", src)


def test_cse_merges_identical_nodes_and_constants():
    assert_pass("""
        graph @main(%x: f32[2]) {
          %c1: f32[2] = constant [1.0, 2.0]
          %c2: f32[2] = constant [1.0, 2.0]
          %a: f32[2] = Add(%x, %c1)
          %b: f32[2] = Add(%x, %c2)
          %y: f32[2] = Mul(%a, %b)
          return %y
        }""", "cse", """
        graph @main(%x: f32[2]) {
          %c1: f32[2] = constant [1.0, 2.0]
          %a: f32[2] = Add(%x, %c1)
          %y: f32[2] = Mul(%a, %a)
          return %y
        }""")


def test_cse_distinguishes_attributes_and_operand_order():
    src = """
        graph @main(%x: f32[2], %z: f32[2]) {
          %a: f32[2] = LeakyRelu(%x) {alpha=0.1}
          %b: f32[2] = LeakyRelu(%x) {alpha=0.2}
          %c: f32[2] = Sub(%x, %z)
          %d: f32[2] = Sub(%z, %x)
          %y: f32[2] = Sum(%a, %b, %c, %d)
          return %y
        }"""
    assert_pass(src, "cse", src)


def test_fold_constants_folds_shapes_of_static_tensors():
    assert_pass("""
        graph @main(%x: f32[2,3,4]) {
          %s: i64[3] = Shape(%x)
          %flat: i64[2] = constant [2, 12]
          %eq: bool[2] = Equal(%flat, %flat)
          %r: f32[2,12] = Reshape(%x, %flat)
          return %r, %s
        }""", "fold-constants,dce", """
        graph @main(%x: f32[2,3,4]) {
          %flat: i64[2] = constant [2, 12]
          %s: i64[3] = constant [2, 3, 4]
          %r: f32[2,12] = Reshape(%x, %flat)
          return %r, %s
        }""")


def test_fold_constants_makes_dynamic_reshape_static():
    # The target shape is computed from Shape(x); once folded, Reshape's output becomes static.
    assert_pass("""
        graph @main(%x: f32[2,3,4]) {
          %s: i64[3] = Shape(%x)
          %i: i64[1] = constant [0]
          %n: i64[1] = Gather(%s, %i)
          %m: i64[1] = constant [-1]
          %shape: i64[2] = Concat(%n, %m) {axis=0}
          %r: f32[?,?] = Reshape(%x, %shape)
          return %r
        }""", "fold-constants,dce", """
        graph @main(%x: f32[2,3,4]) {
          %shape: i64[2] = constant [2, -1]
          %r: f32[2,12] = Reshape(%x, %shape)
          return %r
        }""")


def test_fold_constants_keeps_symbolic_shapes():
    src = """
        graph @main(%x: f32[N,3]) {
          %s: i64[2] = Shape(%x)
          %r: f32[?,?] = Reshape(%x, %s)
          return %r
        }"""
    from tests.passes.golden import run_on_text
    assert "Shape(%x)" in run_on_text(src, "fold-constants")


def test_remove_identity_and_inference_dropout():
    assert_pass("""
        graph @main(%x: f32[2]) {
          %a: f32[2] = Identity(%x)
          %b: f32[2], %mask: bool[2] = Dropout(%a)
          %c: f32[2] = Relu(%b)
          %d: f32[2] = Identity(%c)
          %dropped: bool[2] = Not(%mask)
          return %d, %dropped
        }""", "remove-identity,dce", """
        graph @main(%x: f32[2]) {
          %mask_ones: bool[2] = constant [true, true]
          %d: f32[2] = Relu(%x)
          %dropped: bool[2] = Not(%mask_ones)
          return %d, %dropped
        }""")


def test_remove_identity_keeps_training_dropout_and_output_identity():
    src = """
        graph @main(%x: f32[2], %train: bool[]) {
          %b: f32[2] = Dropout(%x, none, %train)
          %d: f32[2] = Identity(%x)
          return %b, %d
        }"""
    assert_pass(src, "remove-identity", src)
