"""What is installed: the ``synco doctor`` report and the detectron2 installer."""
